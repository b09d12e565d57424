//! keepalived's values as the importer reads them: timers (seconds with a fraction), counts,
//! booleans, addresses, hex strings; and Sluice's duration text for a timer.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

/// A keepalived `<TIMER>`: seconds, with up to six decimals (`3`, `2.5`, `0.000100`).
pub fn timer(text: &str) -> Option<Duration> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(whole) || !all_digits(fraction) || fraction.len() > 6 {
        return None;
    }
    let seconds: u64 = if whole.is_empty() { 0 } else { whole.parse().ok()? };
    let micros: u32 = if fraction.is_empty() { 0 } else { format!("{fraction:0<6}").parse().ok()? };
    Some(Duration::from_secs(seconds) + Duration::from_micros(u64::from(micros)))
}

/// A whole number.
pub fn count(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// A keepalived `<BOOL>`; a flag written without one is true.
pub fn flag(args: &[String]) -> Option<bool> {
    match args.first().map(|a| a.to_ascii_lowercase()) {
        None => Some(true),
        Some(word) => match word.as_str() {
            "on" | "true" | "yes" => Some(true),
            "off" | "false" | "no" => Some(false),
            _ => None,
        },
    }
}

/// What an address written in the keepalived file turned out to be.
pub enum Address {
    V4(Ipv4Addr),
    V6,
    Invalid,
}

pub fn address(text: &str) -> Address {
    match text.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => Address::V4(ip),
        Ok(IpAddr::V6(_)) => Address::V6,
        Err(_) => Address::Invalid,
    }
}

/// A port 1..=65535.
pub fn port(text: &str) -> Option<u16> {
    count(text).and_then(|p| u16::try_from(p).ok()).filter(|&p| p > 0)
}

/// Sluice's text for a duration: whole seconds as `"6s"`, else whole milliseconds. Sluice
/// counts in milliseconds at best: anything finer is rounded up.
pub fn sluice_duration(duration: Duration) -> String {
    let millis = duration.as_micros().div_ceil(1000).max(1);
    if millis.is_multiple_of(1000) {
        format!("{}s", millis / 1000)
    } else {
        format!("{millis}ms")
    }
}

/// A duration as an operator reads it in a message: `6s`, `2.5s`, `100ms`.
pub fn shown(duration: Duration) -> String {
    if duration.subsec_micros() == 0 {
        format!("{}s", duration.as_secs())
    } else if duration < Duration::from_secs(1) && duration.subsec_micros().is_multiple_of(1000) {
        format!("{}ms", duration.subsec_millis())
    } else {
        format!("{}s", duration.as_secs_f64())
    }
}

/// keepalived's free-form hex (`Ab12f 3 456`: pairs of digits per word, a last odd digit on
/// its own, X for "any" in patterns); `None` when a character is not a hex digit or X.
/// Nibbles written as X come back as `None`.
pub fn hex(words: &[String]) -> Option<Vec<(Option<u8>, Option<u8>)>> {
    let mut bytes = Vec::new();
    for word in words {
        let nibbles: Vec<Option<u8>> = word
            .chars()
            .map(|c| match c {
                'x' | 'X' => Some(None),
                c => c.to_digit(16).and_then(|d| u8::try_from(d).ok()).map(Some),
            })
            .collect::<Option<_>>()?;
        for pair in nibbles.chunks(2) {
            match *pair {
                [high, low] => bytes.push((high, low)),
                // An odd digit out is the low half of a byte of its own: `3` is 03.
                [low] => bytes.push((Some(0), low)),
                _ => {}
            }
        }
    }
    Some(bytes)
}

/// The bytes of a hex string, the longest prefix before any X.
pub fn hex_prefix(nibbles: &[(Option<u8>, Option<u8>)]) -> Vec<u8> {
    nibbles.iter().map_while(|&(high, low)| Some((high? << 4) | low?)).collect()
}

#[cfg(test)]
mod tests;
