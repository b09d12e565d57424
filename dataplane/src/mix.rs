//! SplitMix64 (Steele, Lea, Flood, "Fast splittable pseudorandom number generators", 2014):
//! an add of the golden-ratio increment, then three xor-shifts and two multiplications by odd
//! constants, each a bijection of `u64`. Used to seed and shuffle (port pools, hash seeds) and,
//! through `mix`, to hash (schedulers).

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
    fn mix_is_the_first_step_from_a_zero_state() {
        let mut state = 0;
        assert_eq!(splitmix64(&mut state), mix(0));
        assert_eq!(splitmix64(&mut state), mix(0x9e37_79b9_7f4a_7c15));
    }
}
