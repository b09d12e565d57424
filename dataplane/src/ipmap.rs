//! `IpMap`: a small map from IPv4 addresses to values, built once per snapshot and read for
//! every packet (the addresses a link answers for, the worker owning a local IP).
//!
//! Why not a sorted slice and a binary search, as before: a packet asked it twice, and each
//! search is a chain of dependent loads and compares (a profile of the worker over memif put
//! about 10 % of Sluice's own cycles in them at 1,024 flows). Here a lookup is one multiply and,
//! mostly, one slot: open addressing at most half full, the home slot by Fibonacci hashing
//! (the address times 2^32 / phi, its top bits), linear probing to the first free slot.
//! The keys are configured addresses, never chosen by a packet; a packet only picks which
//! address is looked up, and a miss stops at the first free slot of a table at most half full.
//! The entries are also kept sorted, for whoever wants them in order.

/// `IpMap`'s slot: `used` false marks a free one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Slot<V> {
    ip: u32,
    value: V,
    used: bool,
}

/// 2^32 divided by the golden ratio: Knuth's multiplicative hash.
const FIBONACCI: u32 = 0x9e37_79b9;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpMap<V: Copy + Default> {
    /// By address, one entry an address.
    sorted: Vec<(u32, V)>,
    /// A power of two of at least twice the entries (none when empty).
    slots: Vec<Slot<V>>,
    /// 32 minus log2 of `slots.len()`: the home slot is the hash's top bits.
    shift: u32,
}

impl<V: Copy + Default> IpMap<V> {
    /// The map of `entries` (addresses as `u32`); of an address given twice, the first value.
    pub fn new(entries: impl IntoIterator<Item = (u32, V)>) -> IpMap<V> {
        let mut sorted: Vec<(u32, V)> = entries.into_iter().collect();
        sorted.sort_by_key(|&(ip, _)| ip);
        sorted.dedup_by_key(|&mut (ip, _)| ip);
        if sorted.is_empty() {
            return IpMap::default();
        }
        let len = (2 * sorted.len()).next_power_of_two().max(2);
        let mut map = IpMap { slots: vec![Slot::default(); len], shift: 32 - len.trailing_zeros(), sorted: Vec::new() };
        for &(ip, value) in &sorted {
            let mut i = map.home(ip);
            while map.slots[i].used {
                i = (i + 1) & (len - 1);
            }
            map.slots[i] = Slot { ip, value, used: true };
        }
        map.sorted = sorted;
        map
    }

    #[inline(always)]
    fn home(&self, ip: u32) -> usize {
        (ip.wrapping_mul(FIBONACCI) >> self.shift) as usize
    }

    /// The value of `ip`, if it is in the map.
    #[inline]
    pub fn get(&self, ip: u32) -> Option<V> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut i = self.home(ip);
        loop {
            let slot = self.slots[i & mask];
            if !slot.used {
                return None;
            }
            if slot.ip == ip {
                return Some(slot.value);
            }
            i = (i + 1) & mask;
        }
    }

    #[inline]
    pub fn contains(&self, ip: u32) -> bool {
        self.get(ip).is_some()
    }

    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    /// The entries, by address.
    pub fn entries(&self) -> &[(u32, V)] {
        &self.sorted
    }
}

#[cfg(test)]
mod tests {
    use super::IpMap;
    use crate::mix::splitmix64;

    #[test]
    fn finds_exactly_what_it_holds_like_a_sorted_slice() {
        let mut state = 7;
        for n in [0usize, 1, 2, 3, 5, 8, 64, 1000] {
            // Addresses in a few /24s, as local IPs are, and some scattered ones.
            let entries: Vec<(u32, u16)> = (0..n)
                .map(|i| {
                    let ip = if i % 3 == 0 { splitmix64(&mut state) as u32 } else { 0xc612_0000 + i as u32 * 7 };
                    (ip, i as u16)
                })
                .collect();
            let map = IpMap::new(entries.clone());
            let mut sorted = entries.clone();
            sorted.sort_by_key(|&(ip, _)| ip);
            sorted.dedup_by_key(|&mut (ip, _)| ip);
            assert_eq!(map.entries(), &sorted[..]);
            assert_eq!(map.len(), sorted.len());
            let expected = |ip: u32| sorted.binary_search_by_key(&ip, |&(a, _)| a).ok().map(|i| sorted[i].1);
            for &(ip, _) in &entries {
                assert_eq!(map.get(ip), expected(ip), "{n} entries, {ip:#x}");
            }
            for probe in (0..2000).map(|_| splitmix64(&mut state) as u32).chain([0, u32::MAX, 0xc612_0001]) {
                assert_eq!(map.get(probe), expected(probe), "{n} entries, probe {probe:#x}");
            }
        }
    }

    #[test]
    fn the_first_of_a_repeated_address_counts_and_zero_is_an_address_like_any() {
        let map = IpMap::new([(5, 'a'), (0, 'z'), (5, 'b')]);
        assert_eq!(map.get(5), Some('a'));
        assert_eq!(map.get(0), Some('z'));
        assert_eq!(map.len(), 2);
        let empty = IpMap::<u16>::new([]);
        assert!(empty.is_empty());
        assert_eq!(empty.get(0), None);
        assert_eq!(IpMap::<u16>::default(), empty);
    }
}
