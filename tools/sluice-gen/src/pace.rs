//! Rate pacing by the TSC: how many packets are due now so that `rate` per second are offered
//! from `start` on, sent in bursts of at most `cap`.
//!
//! The count due is computed from the elapsed cycles since `start` (not accumulated interval by
//! interval), so rounding never drifts: after t seconds exactly floor(t * rate) packets have
//! been due. A generator that falls behind sends full bursts until it has caught up; that it
//! could not keep up shows in the reported tx_pps.

use std::fmt;

/// Offered load: a fixed rate per second (packets, or TCP connections), or as fast as possible.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rate {
    Max,
    PerSecond(u64),
}

impl Rate {
    /// "max" or a positive integer (a `k` or `m` suffix multiplies by 1e3 or 1e6).
    pub fn parse(text: &str) -> Result<Rate, String> {
        if text == "max" {
            return Ok(Rate::Max);
        }
        let (digits, scale) = match text.as_bytes().last() {
            Some(b'k' | b'K') => (&text[..text.len() - 1], 1_000),
            Some(b'm' | b'M') => (&text[..text.len() - 1], 1_000_000),
            _ => (text, 1),
        };
        let value: f64 = digits.parse().map_err(|_| format!("rate {text:?}: expected `max` or packets per second"))?;
        let rate = value * scale as f64;
        if !(1.0..=1e10).contains(&rate) {
            return Err(format!("rate {text:?}: must be between 1 and 1e10 per second"));
        }
        Ok(Rate::PerSecond(rate as u64))
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rate::Max => f.write_str("max"),
            Rate::PerSecond(r) => write!(f, "{r}"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Pacer {
    rate: Rate,
    hz: u64,
    start: u64,
    issued: u64,
}

impl Pacer {
    /// `hz`: TSC ticks per second; `start`: the TSC at which sending begins.
    pub fn new(rate: Rate, hz: u64, start: u64) -> Pacer {
        Pacer { rate, hz: hz.max(1), start, issued: 0 }
    }

    /// Packets due at TSC `now` and not issued yet, at most `cap`.
    #[inline]
    pub fn due(&self, now: u64, cap: usize) -> usize {
        match self.rate {
            Rate::Max => cap,
            Rate::PerSecond(rate) => {
                let elapsed = now.saturating_sub(self.start) as u128;
                let allowed = (elapsed * rate as u128 / self.hz as u128) as u64;
                allowed.saturating_sub(self.issued).min(cap as u64) as usize
            }
        }
    }

    /// Records that `n` packets were handed to the port (accepted or refused: both were offered).
    #[inline]
    pub fn issued(&mut self, n: usize) {
        self.issued += n as u64;
    }

    #[cfg(test)]
    pub fn total_issued(&self) -> u64 {
        self.issued
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HZ: u64 = 2_700_000_000;

    #[test]
    fn parses_rates() {
        assert_eq!(Rate::parse("max"), Ok(Rate::Max));
        assert_eq!(Rate::parse("1000"), Ok(Rate::PerSecond(1000)));
        assert_eq!(Rate::parse("2.5m"), Ok(Rate::PerSecond(2_500_000)));
        assert_eq!(Rate::parse("100k"), Ok(Rate::PerSecond(100_000)));
        assert!(Rate::parse("0").is_err());
        assert!(Rate::parse("fast").is_err());
        assert!(Rate::parse("-5").is_err());
    }

    #[test]
    fn max_is_always_a_full_burst() {
        let p = Pacer::new(Rate::Max, HZ, 100);
        assert_eq!(p.due(0, 32), 32);
        assert_eq!(p.due(u64::MAX, 32), 32);
    }

    #[test]
    fn exact_count_after_whole_intervals() {
        let mut p = Pacer::new(Rate::PerSecond(1_000_000), HZ, 1_000);
        assert_eq!(p.due(1_000, 32), 0, "nothing is due at the start");
        assert_eq!(p.due(1_000 + 2_700, 32), 1, "one microsecond: one packet");
        // Sending in small polls: after one second exactly one million were due, no drift.
        let mut now = 1_000;
        while now < 1_000 + HZ {
            now += 997; // an awkward polling interval
            let n = p.due(now.min(1_000 + HZ), usize::MAX);
            p.issued(n);
        }
        assert_eq!(p.total_issued(), 1_000_000);
    }

    #[test]
    fn bursts_are_capped_and_a_lagging_sender_catches_up() {
        let mut p = Pacer::new(Rate::PerSecond(10_000_000), HZ, 0);
        let now = HZ / 1000; // 1 ms late: 10,000 due
        let mut bursts = 0;
        loop {
            let n = p.due(now, 32);
            if n == 0 {
                break;
            }
            assert!(n <= 32);
            p.issued(n);
            bursts += 1;
        }
        assert_eq!(p.total_issued(), 10_000);
        assert_eq!(bursts, 10_000usize.div_ceil(32));
    }

    #[test]
    fn low_rates_do_not_overflow_or_stall() {
        let p = Pacer::new(Rate::PerSecond(1), HZ, 0);
        assert_eq!(p.due(HZ - 1, 32), 0);
        assert_eq!(p.due(HZ, 32), 1);
        // A long run at a high rate stays exact in 128-bit arithmetic.
        let p = Pacer::new(Rate::PerSecond(10_000_000_000), HZ, 0);
        assert_eq!(p.due(HZ * 86_400, usize::MAX) as u64, 10_000_000_000 * 86_400);
    }
}
