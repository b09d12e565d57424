//! Giving raw values their meaning: each helper returns the value, or reports why not
//! at the value's own place and returns `None`.

use std::collections::HashMap;
use std::fmt::Display;
use std::hash::Hash;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use toml::{Spanned, Value};

use super::diagnostic::Report;
use super::duration::{parse_duration, DurationError};
use super::ipv4net::Ipv4Net;
use super::keyword::Keyword;
use super::raw;

/// The byte offset where a value starts.
pub fn at<T>(value: &Spanned<T>) -> usize {
    value.span().start
}

/// The key, or an error at the header of its table saying that it is missing.
pub fn require<'t, T>(
    report: &mut Report,
    key: &'t Option<Spanned<T>>,
    name: &str,
    table: &Spanned<impl Sized>,
    table_name: &str,
) -> Option<&'t Spanned<T>> {
    if key.is_none() {
        report.error(at(table), format!("missing key `{name}` in {table_name}"));
    }
    key.as_ref()
}

pub fn keyword<K: Keyword>(report: &mut Report, text: &raw::Text) -> Option<K> {
    let value = K::from_name(text.get_ref());
    if value.is_none() {
        let (what, choices) = (K::WHAT, K::choices());
        report.error(at(text), format!("invalid {what} {:?}: expected {choices}", text.get_ref()));
    }
    value
}

/// An integer in `min..=max`; `key` names it in the message.
pub fn bounded(report: &mut Report, value: &raw::Integer, key: &str, min: u32, max: u32) -> Option<u32> {
    let n = *value.get_ref();
    if n < i64::from(min) {
        report.error(at(value), format!("{key} must be at least {min}, got {n}"));
    } else if n > i64::from(max) {
        report.error(at(value), format!("{key} must be at most {max}, got {n}"));
    }
    u32::try_from(n).ok().filter(|n| (min..=max).contains(n))
}

pub fn duration(report: &mut Report, value: &raw::DurationValue) -> Option<Duration> {
    let shown = match value.get_ref() {
        Value::String(text) => match parse_duration(text) {
            Ok(duration) => return Some(duration),
            Err(DurationError::Zero) => {
                report.error(at(value), format!("invalid duration {text:?}: must be more than zero"));
                return None;
            }
            Err(DurationError::Malformed) => format!("{text:?}"),
        },
        Value::Integer(n) => n.to_string(),
        Value::Float(x) => x.to_string(),
        Value::Boolean(b) => b.to_string(),
        Value::Datetime(d) => d.to_string(),
        Value::Array(_) => "(an array)".to_owned(),
        Value::Table(_) => "(a table)".to_owned(),
    };
    report.error(
        at(value),
        format!(r#"invalid duration {shown}: expected a number with a unit, e.g. "500ms", "2s", "5m""#),
    );
    None
}

pub fn ipv4(report: &mut Report, text: &raw::Text, what: &str) -> Option<Ipv4Addr> {
    let addr = text.get_ref().parse().ok();
    if addr.is_none() {
        let message = format!("invalid {what} {:?}: expected an IPv4 address a.b.c.d", text.get_ref());
        report.error(at(text), message);
    }
    addr
}

/// A network written `a.b.c.d/len` without host bits, as `what` (`route prefix`, `deny prefix`).
pub fn network(report: &mut Report, text: &raw::Text, what: &str) -> Option<Ipv4Net> {
    let net = ipv4_net(report, text, what)?;
    if !net.is_network() {
        let network = Ipv4Net { addr: net.network(), ..net };
        report.error(at(text), format!("{what} {net} has host bits set: the network is {network}"));
        return None;
    }
    Some(net)
}

pub fn ipv4_net(report: &mut Report, text: &raw::Text, what: &str) -> Option<Ipv4Net> {
    match text.get_ref().parse::<Ipv4Net>() {
        Ok(net) => Some(net),
        Err(why) => {
            report.error(at(text), format!("invalid {what} {:?}: {why}", text.get_ref()));
            None
        }
    }
}

/// An IPv4 address and a port other than 0.
pub fn endpoint(report: &mut Report, text: &raw::Text, what: &str) -> Option<SocketAddrV4> {
    let Ok(addr) = text.get_ref().parse::<SocketAddrV4>() else {
        let message = format!("invalid {what} {:?}: expected an IPv4 address and a port, a.b.c.d:port", text.get_ref());
        report.error(at(text), message);
        return None;
    };
    if addr.port() == 0 {
        report.error(at(text), format!("{what} {addr} has port 0: expected a port 1..=65535"));
        return None;
    }
    Some(addr)
}

/// Remembers where each key was first seen, to report the ones seen again.
pub struct FirstSeen<K> {
    places: HashMap<K, usize>,
}

impl<K> Default for FirstSeen<K> {
    fn default() -> Self {
        FirstSeen { places: HashMap::new() }
    }
}

impl<K: Eq + Hash> FirstSeen<K> {
    /// Claims `key` for `place`: true when it was free; when it was already taken,
    /// reports `duplicate {what}` at `place`, naming the first place, and returns false.
    pub fn claim(&mut self, report: &mut Report, key: K, place: usize, what: impl Display) -> bool {
        match self.places.get(&key) {
            Some(&earlier) => {
                let (line, col) = report.position_of(earlier);
                report.error(place, format!("duplicate {what} (first at line {line}, column {col})"));
                false
            }
            None => {
                self.places.insert(key, place);
                true
            }
        }
    }
}

impl FirstSeen<String> {
    /// `claim` for a string value at its own place: `duplicate {what} "text"`.
    pub fn claim_text(&mut self, report: &mut Report, text: &raw::Text, what: &str) -> bool {
        let value = text.get_ref();
        self.claim(report, value.clone(), at(text), format_args!("{what} {value:?}"))
    }
}

/// `1 CPU`, `2 CPUs`: a count and its noun, in the right number.
pub fn plural(count: usize, noun: &str) -> String {
    match count {
        1 => format!("1 {noun}"),
        n => format!("{n} {noun}s"),
    }
}
