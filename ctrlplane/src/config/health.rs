//! `[service.health]`: how a service's backends are checked.
//!
//! `send` and `expect` mean different things per check: the payload and the reply's
//! prefix for `udp`, the request path and the status code for `http` (defaults `/` and
//! `200`, filled in here), nothing for `tcp` and `none` (a warning when given).

use std::time::Duration;

use toml::Spanned;

use super::diagnostic::Report;
use super::keyword::Keyword;
use super::model::{CheckKind, Health};
use super::raw;
use super::value::{at, bounded, duration, keyword};

/// The http check's defaults for an empty `send` and `expect`.
pub const HTTP_DEFAULT_PATH: &str = "/";
pub const HTTP_DEFAULT_STATUS: &str = "200";

pub fn health(report: &mut Report, table: Option<&Spanned<raw::Health>>) -> Health {
    let mut health = Health::default();
    let Some(table) = table else { return health };
    let header = at(table);
    let written = table.get_ref();

    if let Some(check) = written.check.as_ref().and_then(|text| keyword(report, text)) {
        health.check = check;
    }
    timers(report, written, &mut health);
    for (key, value, slot) in [("rise", &written.rise, &mut health.rise), ("fall", &written.fall, &mut health.fall)] {
        if let Some(count) = value.as_ref().and_then(|v| bounded(report, v, &format!("health {key}"), 1, u32::MAX)) {
            *slot = count;
        }
    }
    if let Some(action) = written.on_failure.as_ref().and_then(|text| keyword(report, text)) {
        health.on_failure = action;
    }
    let send = written.send.as_ref();
    let expect = written.expect.as_ref();
    match health.check {
        CheckKind::Udp => udp_probe(report, header, send, expect, &mut health),
        CheckKind::Http => http_probe(report, send, expect, &mut health),
        CheckKind::None | CheckKind::Tcp => {
            for (key, text) in [("send", send), ("expect", expect)] {
                if let Some(text) = text.filter(|text| !text.get_ref().is_empty()) {
                    let message = format!("health {key} is not used by check {:?}", health.check.name());
                    report.warning(at(text), message);
                }
            }
        }
    }
    health
}

/// `interval` and `timeout`; a check must end before the next one starts.
fn timers(report: &mut Report, written: &raw::Health, health: &mut Health) {
    let mut valid = true;
    for (value, slot) in [(&written.interval, &mut health.interval), (&written.timeout, &mut health.timeout)] {
        if let Some(value) = value {
            match duration(report, value) {
                Some(duration) => *slot = duration,
                None => valid = false,
            }
        }
    }
    if !valid || health.timeout <= health.interval {
        return;
    }
    let (timeout, interval) = (show(health.timeout), show(health.interval));
    // Blame the timeout where it is written, else the interval shorter than its default.
    match (&written.timeout, &written.interval) {
        (Some(place), _) => {
            report.error(at(place), format!("health timeout {timeout} is longer than the interval {interval}"))
        }
        (None, Some(place)) => {
            report.error(at(place), format!("health interval {interval} is shorter than the default timeout {timeout}"))
        }
        (None, None) => {}
    }
}

fn udp_probe(
    report: &mut Report,
    header: usize,
    send: Option<&raw::Text>,
    expect: Option<&raw::Text>,
    health: &mut Health,
) {
    let needs = [("send", send, "the payload to send"), ("expect", expect, "the prefix the reply must start with")];
    for (key, text, meaning) in needs {
        match text {
            Some(text) if !text.get_ref().is_empty() => {}
            other => report
                .error(other.map_or(header, at), format!("health check \"udp\" needs a non-empty `{key}`: {meaning}")),
        }
    }
    health.send = send.map_or_else(String::new, |text| text.get_ref().clone());
    health.expect = expect.map_or_else(String::new, |text| text.get_ref().clone());
}

fn http_probe(report: &mut Report, send: Option<&raw::Text>, expect: Option<&raw::Text>, health: &mut Health) {
    health.send = HTTP_DEFAULT_PATH.to_owned();
    health.expect = HTTP_DEFAULT_STATUS.to_owned();
    if let Some(path) = send.filter(|text| !text.get_ref().is_empty()) {
        if path.get_ref().starts_with('/') {
            health.send.clone_from(path.get_ref());
        } else {
            let message = format!("health send {:?} is not a request path: it must start with \"/\"", path.get_ref());
            report.error(at(path), message);
        }
    }
    if let Some(status) = expect.filter(|text| !text.get_ref().is_empty()) {
        if is_status_code(status.get_ref()) {
            health.expect.clone_from(status.get_ref());
        } else {
            let message = format!("health expect {:?} is not an HTTP status code 100..=599", status.get_ref());
            report.error(at(status), message);
        }
    }
}

/// Three digits, 100 to 599.
fn is_status_code(text: &str) -> bool {
    text.len() == 3
        && text.bytes().all(|b| b.is_ascii_digit())
        && text.parse::<u16>().is_ok_and(|code| (100..=599).contains(&code))
}

/// A duration as `Debug` prints it: `500ms`, `1s`, `1.5s`.
fn show(duration: Duration) -> String {
    format!("{duration:?}")
}

#[cfg(test)]
mod tests;
