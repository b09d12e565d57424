//! Durations as the config file writes them: a number and a unit, `"500ms"`, `"2s"`,
//! `"5m"`, `"1h"`, or several from the largest unit down, `"1m30s"`.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DurationError {
    /// Not numbers with units, units out of order, or too long to hold.
    Malformed,
    /// Well formed, but nothing: no timer may be zero.
    Zero,
}

/// The units, largest first; in a compound duration each must be smaller than the last.
const UNITS: [(&str, Duration); 4] = [
    ("h", Duration::from_secs(3600)),
    ("m", Duration::from_secs(60)),
    ("s", Duration::from_secs(1)),
    ("ms", Duration::from_millis(1)),
];

pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let mut rest = text;
    let mut total = Duration::ZERO;
    // Units still allowed: they must come largest first, each at most once.
    let mut allowed = &UNITS[..];
    if rest.is_empty() {
        return Err(DurationError::Malformed);
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let letters = rest[digits..].find(|c: char| !c.is_ascii_alphabetic()).map_or(rest.len(), |end| digits + end);
        let (number, unit) = (&rest[..digits], &rest[digits..letters]);
        let count: u32 = number.parse().map_err(|_| DurationError::Malformed)?;
        let place = allowed.iter().position(|(name, _)| *name == unit);
        let place = place.ok_or(DurationError::Malformed)?;
        let part = allowed[place].1.checked_mul(count).ok_or(DurationError::Malformed)?;
        total = total.checked_add(part).ok_or(DurationError::Malformed)?;
        allowed = &allowed[place + 1..];
        rest = &rest[letters..];
    }
    if total.is_zero() {
        return Err(DurationError::Zero);
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
    }

    #[test]
    fn compound_from_the_largest_unit_down() {
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h0m5s250ms"), Ok(Duration::from_millis(3_605_250)));
    }

    #[test]
    fn refuses_garbage() {
        for bad in [
            "",
            "5",
            "s",
            "ms5",
            "5 s",
            " 5s",
            "5s ",
            "1.5s",
            "-1s",
            "+1s",
            "5sec",
            "5S",
            "30s1m",
            "1s1s",
            "1m30",
            "4294967296s",
        ] {
            assert_eq!(parse_duration(bad), Err(DurationError::Malformed), "{bad:?}");
        }
    }

    #[test]
    fn refuses_zero() {
        assert_eq!(parse_duration("0s"), Err(DurationError::Zero));
        assert_eq!(parse_duration("0m0ms"), Err(DurationError::Zero));
    }
}
