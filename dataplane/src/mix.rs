//! SplitMix64 (Steele, Lea, Flood, "Fast splittable pseudorandom number generators", 2014):
//! an add of the golden-ratio increment, then three xor-shifts and two multiplications by odd
//! constants, each a bijection of `u64`. Used to seed and shuffle (port pools, hash seeds) and,
//! through `mix`, to hash (schedulers, and `MixHasher`'s maps).

/// One step of the generator: advances `state` and returns the next word.
#[inline]
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    finish(*state)
}

/// The generator's output function applied to `x + increment`: a stateless bijective mix.
#[inline]
pub const fn mix(x: u64) -> u64 {
    finish(x.wrapping_add(0x9e37_79b9_7f4a_7c15))
}

/// A `Hasher` for maps keyed by integers on the packet path (routes by prefix, neighbours by
/// link and address): `mix` over each word written, some ten instructions where the standard
/// SipHash costs a hundred. Not a keyed PRF: for tables whose keys are configured (a packet
/// only chooses which key it asks for, and a miss ends at the table's first empty group), or,
/// seeded at random (`BuildMix::random`), bounded and drawn from a configured prefix.
#[derive(Debug, Default, Clone, Copy)]
pub struct MixHasher(u64);

/// Builds `MixHasher`s from a seed, for `HashMap::with_hasher`: 0 by default (`Default`), a
/// random one from `random` for maps whose keys a packet may choose within limits (neighbours
/// on a connected prefix), so that which keys share a group cannot be worked out from outside.
#[derive(Debug, Default, Clone, Copy)]
pub struct BuildMix {
    seed: u64,
}

impl BuildMix {
    pub fn random() -> BuildMix {
        use std::hash::BuildHasher;
        BuildMix { seed: std::collections::hash_map::RandomState::new().hash_one(0x6e65_6967u64) }
    }
}

impl std::hash::BuildHasher for BuildMix {
    type Hasher = MixHasher;

    #[inline]
    fn build_hasher(&self) -> MixHasher {
        MixHasher(self.seed)
    }
}

impl std::hash::Hasher for MixHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.0 = mix(self.0 ^ n);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

#[inline]
const fn finish(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_hasher_spreads_networks_over_high_and_low_bits() {
        use std::hash::BuildHasher;
        // /24 networks: the low byte always zero; hashbrown reads both ends of the hash.
        let hashes: Vec<u64> = (0..4096u32).map(|i| BuildMix::default().hash_one(0xc612_0000 + (i << 8))).collect();
        for (bits, shift) in [(0xfff, 0), (0xfff, 52)] {
            let distinct: std::collections::HashSet<u64> = hashes.iter().map(|h| (h >> shift) & bits).collect();
            assert!(distinct.len() > 2500, "{} of 4096 buckets at shift {shift}", distinct.len());
        }
        assert_ne!(BuildMix::default().hash_one(1u32), BuildMix::default().hash_one(2u32));
        assert_ne!(BuildMix::random().hash_one(1u32), BuildMix::random().hash_one(1u32), "seeded");
    }

    #[test]
    fn mix_is_the_first_step_from_a_zero_state() {
        let mut state = 0;
        assert_eq!(splitmix64(&mut state), mix(0));
        assert_eq!(splitmix64(&mut state), mix(0x9e37_79b9_7f4a_7c15));
    }
}
