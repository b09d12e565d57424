//! The spelling of every enum-like value in the config file, in one place.
//!
//! Each enum lists its accepted strings once; parsing, error messages (which list the
//! accepted values) and `Display` all read that one list.

use std::fmt;

use super::model::{CheckKind, ClientAddress, IdleMode, OnFailure, Protocol, Scheduler, SteeringMode, WhenFull};

/// An enum written in the config file as one of a fixed set of strings.
pub trait Keyword: Copy + PartialEq + 'static {
    /// What the value is, for messages: `invalid scheduler "x": ...`.
    const WHAT: &'static str;
    /// Every accepted spelling and its value, in the order messages list them.
    const NAMES: &'static [(&'static str, Self)];

    fn from_name(name: &str) -> Option<Self> {
        Self::NAMES.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }

    fn name(self) -> &'static str {
        Self::NAMES.iter().find(|(_, v)| *v == self).map_or("?", |(n, _)| n)
    }

    /// The accepted spellings as a phrase: `"busy" or "adaptive"`.
    fn choices() -> String {
        let quoted: Vec<String> = Self::NAMES.iter().map(|(n, _)| format!("{n:?}")).collect();
        match quoted.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
            _ => quoted.concat(),
        }
    }
}

macro_rules! keyword {
    ($ty:ty, $what:literal, [$($name:literal => $value:expr),+ $(,)?]) => {
        impl Keyword for $ty {
            const WHAT: &'static str = $what;
            const NAMES: &'static [(&'static str, Self)] = &[$(($name, $value)),+];
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

keyword!(IdleMode, "idle mode", ["busy" => IdleMode::Busy, "adaptive" => IdleMode::Adaptive]);
keyword!(SteeringMode, "steering mode", [
    "auto" => SteeringMode::Auto,
    "flow" => SteeringMode::Flow,
    "rss" => SteeringMode::Rss,
    "redirect" => SteeringMode::Redirect,
]);
keyword!(Protocol, "protocol", ["udp" => Protocol::Udp, "tcp" => Protocol::Tcp]);
keyword!(Scheduler, "scheduler", [
    "rr" => Scheduler::Rr,
    "wrr" => Scheduler::Wrr,
    "wlc" => Scheduler::Wlc,
    "sh" => Scheduler::Sh,
    "maglev" => Scheduler::Maglev,
]);
keyword!(ClientAddress, "client address mode", [
    "none" => ClientAddress::None,
    "proxy-v2" => ClientAddress::ProxyV2,
    "toa" => ClientAddress::Toa,
]);
keyword!(CheckKind, "health check", [
    "none" => CheckKind::None,
    "tcp" => CheckKind::Tcp,
    "udp" => CheckKind::Udp,
    "http" => CheckKind::Http,
]);
keyword!(WhenFull, "when_full action", ["evict" => WhenFull::Evict, "drop" => WhenFull::Drop]);
keyword!(OnFailure, "on_failure action", [
    "inhibit" => OnFailure::Inhibit,
    "remove" => OnFailure::Remove,
]);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for (name, value) in Scheduler::NAMES {
            assert_eq!(Scheduler::from_name(name), Some(*value));
            assert_eq!(value.to_string(), *name);
        }
        assert_eq!(ClientAddress::ProxyV2.to_string(), "proxy-v2");
        assert_eq!(Scheduler::from_name("RR"), None);
    }

    #[test]
    fn choices_read_as_a_phrase() {
        assert_eq!(IdleMode::choices(), r#""busy" or "adaptive""#);
        assert_eq!(Protocol::choices(), r#""udp" or "tcp""#);
        assert_eq!(Scheduler::choices(), r#""rr", "wrr", "wlc", "sh" or "maglev""#);
    }
}
