//! The flow index: an open-addressing hash from a `FlowKey` hash to an entry (session index and
//! direction), with Robin Hood probing and backward-shift deletion.
//!
//! Why this shape:
//! - One array of 8-byte slots `{hash, entry}`, sized once for the table's capacity at a load of
//!   at most 3/4, so it never grows and probing always ends at an empty slot.
//! - The home slot is the hash scaled to the table length (multiply and shift, Lemire's
//!   "fastrange"), so the table need not be a power of two and memory follows capacity closely.
//! - Robin Hood keeps probe lengths even and lets a miss stop as soon as it meets an entry
//!   closer to its home than the probe is: the first packet of every new flow is a miss.
//! - Backward-shift deletion leaves no tombstones, so a table that churns for days probes
//!   like a fresh one.
//! - Keys are not stored: the caller's `is_match` compares against the session itself. The
//!   stored 32-bit hash skips almost all of those compares and gives each entry's home slot.
//! - The hash is seeded per table at random, so clients cannot aim collisions at it.

use super::FlowKey;
use crate::bigmem::BigArray;
use crate::mix::splitmix64;

/// An index slot. `entry == EMPTY` marks a free slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Slot {
    hash: u32,
    entry: u32,
}

pub(super) const EMPTY: u32 = u32::MAX;
const FREE_SLOT: Slot = Slot { hash: 0, entry: EMPTY };

#[derive(Clone)]
pub(super) struct FlowIndex {
    slots: BigArray<Slot>,
    len: usize,
    seed: [u64; 3],
}

impl FlowIndex {
    /// An index for up to `max_entries` entries, hashing with keys derived from `seed`.
    pub(super) fn new(max_entries: usize, seed: u64) -> FlowIndex {
        let slots = max_entries + max_entries / 3 + 1;
        assert!(slots <= u32::MAX as usize, "flow index of {slots} slots is too large");
        let mut state = seed;
        let seed = [splitmix64(&mut state), splitmix64(&mut state), splitmix64(&mut state)];
        FlowIndex { slots: BigArray::new(slots, FREE_SLOT), len: 0, seed }
    }

    /// A seeded 32-bit hash of `key`: two folded 64x64->128 multiplies, the mixing step of
    /// wyhash-like hashes. Not cryptographic; the random seed is what keeps collisions from
    /// being aimed.
    #[inline]
    pub(super) fn hash(&self, key: &FlowKey) -> u32 {
        let ips = (u64::from(u32::from(key.src.ip)) << 32) | u64::from(u32::from(key.dst.ip));
        let rest = (u64::from(key.src.port) << 32) | (u64::from(key.dst.port) << 16) | u64::from(key.proto);
        let h = fold_mul(ips ^ self.seed[0], rest ^ self.seed[1]);
        let h = fold_mul(h ^ self.seed[2], 0x9e37_79b9_7f4a_7c15);
        (h >> 32) as u32
    }

    /// Starts loading `hash`'s home slot.
    #[inline(always)]
    pub(super) fn prefetch(&self, hash: u32) {
        crate::prefetch::prefetch(&self.slots[self.home(hash)]);
    }

    /// The first entry stored under `hash`, without comparing keys: what a lookup of a key with
    /// this hash will most likely find, for prefetching.
    #[inline]
    pub(super) fn first_under(&self, hash: u32) -> Option<u32> {
        self.find(hash, |_| true)
    }

    /// The entry stored under `hash` for which `is_match` holds.
    #[inline(always)]
    pub(super) fn find(&self, hash: u32, mut is_match: impl FnMut(u32) -> bool) -> Option<u32> {
        let mut i = self.home(hash);
        let mut probe = 0;
        loop {
            let slot = self.slots[i];
            if slot.entry == EMPTY || self.distance(i, slot.hash) < probe {
                return None;
            }
            if slot.hash == hash && is_match(slot.entry) {
                return Some(slot.entry);
            }
            i = self.next(i);
            probe += 1;
        }
    }

    /// Adds `entry` under `hash`. The caller has checked that its key is not present and that
    /// fewer than `max_entries` are stored; `false` (and no change) if the index is full anyway.
    #[inline]
    pub(super) fn insert(&mut self, hash: u32, entry: u32) -> bool {
        if self.len + 1 >= self.slots.len() {
            return false;
        }
        let mut carried = Slot { hash, entry };
        let mut i = self.home(hash);
        let mut probe = 0;
        loop {
            let slot = self.slots[i];
            if slot.entry == EMPTY {
                self.slots[i] = carried;
                self.len += 1;
                return true;
            }
            let resident = self.distance(i, slot.hash);
            if resident < probe {
                // Robin Hood: the entry nearer its home moves on, ours takes its place.
                self.slots[i] = carried;
                carried = slot;
                probe = resident;
            }
            i = self.next(i);
            probe += 1;
        }
    }

    /// Removes `entry`, stored under `hash`; `false` if it is not there.
    #[inline]
    pub(super) fn remove(&mut self, hash: u32, entry: u32) -> bool {
        let Some(mut hole) = self.position(hash, entry) else {
            return false;
        };
        // Backward shift: pull each following displaced entry one slot nearer its home.
        let mut i = self.next(hole);
        loop {
            let slot = self.slots[i];
            if slot.entry == EMPTY || self.distance(i, slot.hash) == 0 {
                break;
            }
            self.slots[hole] = slot;
            hole = i;
            i = self.next(i);
        }
        self.slots[hole] = FREE_SLOT;
        self.len -= 1;
        true
    }

    /// What an index for `max_entries` entries allocates.
    pub(super) fn bytes_for(max_entries: usize) -> usize {
        (max_entries + max_entries / 3 + 1) * std::mem::size_of::<Slot>()
    }

    /// Entries stored (tests: that removals leave none behind).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn memory_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.slots)
    }

    fn position(&self, hash: u32, entry: u32) -> Option<usize> {
        let mut i = self.home(hash);
        let mut probe = 0;
        loop {
            let slot = self.slots[i];
            if slot.entry == EMPTY || self.distance(i, slot.hash) < probe {
                return None;
            }
            if slot.entry == entry {
                return Some(i);
            }
            i = self.next(i);
            probe += 1;
        }
    }

    #[inline(always)]
    fn home(&self, hash: u32) -> usize {
        ((u64::from(hash) * self.slots.len() as u64) >> 32) as usize
    }

    #[inline(always)]
    fn next(&self, i: usize) -> usize {
        if i + 1 == self.slots.len() {
            0
        } else {
            i + 1
        }
    }

    /// How far slot `i` is from the home of an entry with `hash`.
    #[inline(always)]
    fn distance(&self, i: usize, hash: u32) -> usize {
        let home = self.home(hash);
        if i >= home {
            i - home
        } else {
            i + self.slots.len() - home
        }
    }
}

#[inline(always)]
fn fold_mul(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::Endpoint;
    use std::collections::HashSet;
    use std::net::Ipv4Addr;

    /// Every stored entry is reachable from its home without crossing an empty slot, and the
    /// Robin Hood order holds: probe distance grows by at most one from slot to slot.
    fn check_invariants(index: &FlowIndex) {
        let n = index.slots.len();
        let mut count = 0;
        for i in 0..n {
            let slot = index.slots[i];
            if slot.entry == EMPTY {
                continue;
            }
            count += 1;
            let d = index.distance(i, slot.hash);
            for back in 1..=d {
                assert_ne!(index.slots[(i + n - back) % n].entry, EMPTY, "gap before slot {i}");
            }
            let prev = index.slots[(i + n - 1) % n];
            if d > 0 {
                assert!(index.distance((i + n - 1) % n, prev.hash) + 1 >= d, "Robin Hood order at {i}");
            }
        }
        assert_eq!(count, index.len);
    }

    #[test]
    fn colliding_hashes_wrap_around_and_shift_back() {
        let mut index = FlowIndex::new(9, 1);
        // u32::MAX scales to the last slot, so these collide there and wrap to the front.
        for entry in 0..6 {
            assert!(index.insert(u32::MAX, entry));
        }
        assert!(index.insert(0, 100));
        check_invariants(&index);
        for entry in 0..6 {
            assert_eq!(index.find(u32::MAX, |e| e == entry), Some(entry));
        }
        assert!(index.remove(u32::MAX, 2));
        assert!(!index.remove(u32::MAX, 2), "already removed");
        check_invariants(&index);
        assert_eq!(index.find(u32::MAX, |e| e == 2), None);
        for entry in [0, 1, 3, 4, 5] {
            assert_eq!(index.find(u32::MAX, |e| e == entry), Some(entry));
        }
        assert_eq!(index.find(0, |e| e == 100), Some(100));
    }

    #[test]
    fn never_overfills() {
        let mut index = FlowIndex::new(3, 1);
        let slots = index.slots.len();
        for entry in 0..slots as u32 - 1 {
            assert!(index.insert(entry, entry));
        }
        assert!(!index.insert(7, 7), "one slot always stays empty so that probes end");
    }

    #[test]
    fn random_churn_keeps_invariants() {
        let mut index = FlowIndex::new(1000, 7);
        let mut rng = 42u64;
        let mut live: Vec<(u32, u32)> = Vec::new();
        for step in 0..20_000u32 {
            if live.len() < 1000 && splitmix64(&mut rng) % 3 < 2 {
                let hash = (splitmix64(&mut rng) % 64) as u32 * 0x0400_0000; // many collisions
                assert!(index.insert(hash, step));
                live.push((hash, step));
            } else if !live.is_empty() {
                let (hash, entry) = live.swap_remove((splitmix64(&mut rng) % live.len() as u64) as usize);
                assert!(index.remove(hash, entry));
            }
            if step % 1000 == 999 {
                check_invariants(&index);
                for &(hash, entry) in &live {
                    assert_eq!(index.find(hash, |e| e == entry), Some(entry));
                }
            }
        }
    }

    #[test]
    fn hash_depends_on_every_field_and_the_seed() {
        let index = FlowIndex::new(10, 1);
        let key = FlowKey {
            proto: 6,
            src: Endpoint::new(Ipv4Addr::new(10, 0, 0, 1), 40000),
            dst: Endpoint::new(Ipv4Addr::new(192, 0, 2, 1), 80),
        };
        let variants = [
            FlowKey { proto: 17, ..key },
            FlowKey { src: Endpoint::new(Ipv4Addr::new(10, 0, 0, 2), 40000), ..key },
            FlowKey { src: Endpoint::new(Ipv4Addr::new(10, 0, 0, 1), 40001), ..key },
            FlowKey { dst: Endpoint::new(Ipv4Addr::new(192, 0, 2, 2), 80), ..key },
            FlowKey { dst: Endpoint::new(Ipv4Addr::new(192, 0, 2, 1), 81), ..key },
            FlowKey { src: key.dst, dst: key.src, ..key },
        ];
        for v in variants {
            assert_ne!(index.hash(&v), index.hash(&key), "{v:?}");
        }
        assert_ne!(FlowIndex::new(10, 2).hash(&key), index.hash(&key));
    }

    #[test]
    fn hash_spreads_sequential_ports() {
        let index = FlowIndex::new(1 << 16, 3);
        let slots = index.slots.len();
        let mut homes = HashSet::new();
        for port in 0..=u16::MAX {
            let key = FlowKey {
                proto: 6,
                src: Endpoint::new(Ipv4Addr::new(10, 0, 0, 1), port),
                dst: Endpoint::new(Ipv4Addr::new(192, 0, 2, 1), 80),
            };
            homes.insert(index.home(index.hash(&key)));
        }
        // 65536 keys thrown at ~87k slots: a uniform hash fills about 1 - e^-0.75 = 53% of them.
        let filled = homes.len() as f64 / slots as f64;
        assert!((0.50..0.56).contains(&filled), "filled {filled}");
    }
}
