//! The worker's clock arithmetic: the ms clock from the TSC by a multiply, not a division, the
//! drivers' calls timed for `sluice_worker_cycles_per_packet`, and work between bursts bounded
//! by time (`in_slices`).

use crate::dpdk;

/// 2^64 / `d` rounded up (`d` at least 2; a TSC of 1 kHz or less is no TSC): `ms_of`'s
/// multiplier.
pub(super) fn inverse(d: u64) -> u64 {
    u64::MAX / d.max(2) + 1
}

/// `tsc` / `d` (rounded down) for the `inverse` of `d`, or one more: the rounded-up inverse
/// overshoots by less than `tsc / 2^64` (in units of the result), so the result is exact
/// while `tsc < 2^64 / d` (an hour of a 2.4 GHz TSC, for ms) and after that may tick over
/// early by that fraction of a ms at most (10 us after two years at 3 GHz), never late; it
/// never goes backwards.
#[inline(always)]
pub(super) fn ms_of(tsc: u64, inverse: u64) -> u64 {
    ((u128::from(tsc) * u128::from(inverse)) >> 64) as u64
}

/// Runs `call`, a driver's receive or transmit, adding the TSC cycles it took to `spent` if
/// `on`: what `sluice_worker_cycles_per_packet` tells apart from Sluice's own work.
#[inline(always)]
pub(super) fn timed<T>(on: bool, spent: &mut u64, call: impl FnOnce() -> T) -> T {
    if !on {
        return call();
    }
    let start = dpdk::tsc();
    let out = call();
    *spent += dpdk::tsc().wrapping_sub(start);
    out
}

/// Runs `step`, work done in chunks of `chunk` (it returns how much it did), until a chunk
/// comes back short or `cycles` of the TSC have gone: one chunk at least. The clock is read
/// only once a chunk came back full: in most loops there is nothing to do, and reading the TSC
/// costs tens of cycles in a VM.
#[inline]
pub(super) fn in_slices(chunk: usize, cycles: u64, mut step: impl FnMut() -> usize) {
    if step() < chunk {
        return;
    }
    let until = dpdk::tsc().wrapping_add(cycles);
    while step() >= chunk && dpdk::tsc() < until {}
}

#[cfg(test)]
mod tests {
    use super::{inverse, ms_of};
    use crate::mix::splitmix64;

    #[test]
    fn ms_by_multiply_is_the_division_or_a_hair_early() {
        let mut rng = 5;
        // Whether `got` for `t` is `t / d`, or one more within `t / 2^64` of a ms boundary.
        let close = |t: u64, d: u64, got: u64| {
            let want = t / d;
            let early_by = (want + 1) as u128 * d as u128 - t as u128;
            got == want || (got == want + 1 && early_by <= ((t as u128 * d as u128) >> 64) + 1)
        };
        let late = 3_000_000_000u64 * 86_400 * 730; // two years at 3 GHz
        for d in [2, 1_000, 2_445_000, 3_000_000, 4_999_999, u64::from(u32::MAX)] {
            let inv = inverse(d);
            for _ in 0..20_000 {
                let t = splitmix64(&mut rng) >> (splitmix64(&mut rng) % 64);
                let got = ms_of(t, inv);
                if t < u64::MAX / d {
                    assert_eq!(got, t / d, "tsc {t}, {d} a ms");
                }
                assert!(close(t, d, got), "tsc {t}, {d} a ms: {got}");
                let edge = (t / d).saturating_mul(d);
                assert!(ms_of(edge.saturating_sub(1), inv) <= ms_of(edge, inv), "backwards at {edge}");
            }
            for k in 0..1000 {
                let t = (late / d + k) * d;
                for t in [t - 1, t, t + 1] {
                    assert!(close(t, d, ms_of(t, inv)), "{d} a ms, {t}");
                }
            }
        }
    }
}
