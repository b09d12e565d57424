//! keepalived's checkers (`TCP_CHECK`, `HTTP_GET`, `SSL_GET`, `UDP_CHECK`, `MISC_CHECK`, ...)
//! and the timers they inherit, turned into one Sluice health check each, or reported.
//!
//! Timers are written at any level: the virtual server's are the defaults of its real servers,
//! whose are the defaults of their checkers. `delay_loop` becomes the interval, `connect_timeout`
//! the timeout (at most the interval), `retry` (`nb_get_retry`) the failures that bring a
//! backend down (retry + 1); a backend comes back after one good check, as in keepalived.

use std::time::Duration;

use super::diagnostic::Report;
use super::draft::Probe;
use super::syntax::Statement;
use super::values::{count, hex, hex_prefix, shown, timer};
use crate::config::{HTTP_DEFAULT_PATH, HTTP_DEFAULT_STATUS};

/// keepalived's defaults: `delay_loop` 60 s, `connect_timeout` 5 s.
const DEFAULT_DELAY_LOOP: Duration = Duration::from_secs(60);
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The timers a checker inherits, each with the line it was written on.
#[derive(Debug, Clone, Default)]
pub struct Timers {
    pub delay_loop: Option<(Duration, usize)>,
    pub connect_timeout: Option<(Duration, usize)>,
    pub retry: Option<(u64, usize)>,
    pub delay_before_retry: Option<(Duration, usize)>,
}

impl Timers {
    /// Takes a timer keyword into these timers; false when `statement` is not one.
    pub fn read(&mut self, statement: &Statement, report: &mut Report) -> bool {
        let value = statement.args.first().map(String::as_str).unwrap_or("");
        let line = statement.line;
        let slot_timer = |slot: &mut Option<(Duration, usize)>, report: &mut Report| match timer(value) {
            Some(duration) if !duration.is_zero() => *slot = Some((duration, line)),
            _ => report
                .warning(line, format!("{} {value:?} is not a number of seconds above 0: ignored", statement.keyword)),
        };
        match statement.keyword.as_str() {
            "delay_loop" => slot_timer(&mut self.delay_loop, report),
            "connect_timeout" => slot_timer(&mut self.connect_timeout, report),
            "delay_before_retry" => slot_timer(&mut self.delay_before_retry, report),
            "retry" | "nb_get_retry" => match count(value) {
                Some(n) => self.retry = Some((n, line)),
                None => report.warning(line, format!("{} {value:?} is not a count: ignored", statement.keyword)),
            },
            _ => return false,
        }
        true
    }
}

/// A checker carried over: what one backend's check would be in Sluice.
#[derive(Debug, Clone)]
pub struct Check {
    /// The checker's keyword and line.
    pub checker: String,
    pub line: usize,
    pub probe: Probe,
    pub interval: Duration,
    pub timeout: Duration,
    pub fall: u32,
}

impl Check {
    /// Whether two checks are the same Sluice check.
    pub fn same(&self, other: &Check) -> bool {
        (&self.probe, self.interval, self.timeout, self.fall)
            == (&other.probe, other.interval, other.timeout, other.fall)
    }

    /// For messages: `tcp every 6s, timeout 3s, fall 4`.
    pub fn describe(&self) -> String {
        let probe = match &self.probe {
            Probe::Tcp => "tcp".to_owned(),
            Probe::Udp { send, expect } => format!("udp {send:?} -> {expect:?}"),
            Probe::Http { path, status } => format!("http {path:?} -> {status}"),
        };
        format!("{probe} every {}, timeout {}, fall {}", shown(self.interval), shown(self.timeout), self.fall)
    }
}

/// Whether a real server keyword names a checker.
pub fn is_checker(keyword: &str) -> bool {
    keyword.ends_with("_CHECK") || keyword == "HTTP_GET" || keyword == "SSL_GET"
}

/// The Sluice check for a checker block of a real server whose port is `port`; `None`, with
/// the reason reported, when it cannot be carried over.
pub fn read(statement: &Statement, port: u16, inherited: &Timers, report: &mut Report) -> Option<Check> {
    let checker = statement.keyword.as_str();
    let line = statement.line;
    let (probe, default_delay_before_retry) = match checker {
        "TCP_CHECK" => (Some(Probe::Tcp), Duration::from_secs(1)),
        "HTTP_GET" => (Some(http(statement, report)), Duration::from_secs(3)),
        "SSL_GET" => {
            let paths: Vec<String> =
                urls(statement).filter_map(|url| field(url, "path")).map(|p| format!("{p:?}")).collect();
            let what = if paths.is_empty() { "no path".to_owned() } else { format!("path {}", paths.join(", ")) };
            report.warning(
                line,
                format!("SSL_GET becomes a tcp connect check: Sluice has no TLS check, so {what} and the status are not checked"),
            );
            (Some(Probe::Tcp), Duration::from_secs(3))
        }
        "UDP_CHECK" => (udp(statement, report), Duration::from_secs(1)),
        "SMTP_CHECK" => {
            report.warning(
                line,
                "SMTP_CHECK becomes a tcp connect check: Sluice does not speak SMTP (no banner, no HELO)",
            );
            (Some(Probe::Tcp), Duration::from_secs(1))
        }
        "MISC_CHECK" => {
            let script = statement.children().iter().find(|s| s.keyword == "misc_path").map(|s| s.args.join(" "));
            let script = script.map_or_else(String::new, |path| format!(" ({path})"));
            report.warning(
                line,
                format!(
                    "MISC_CHECK is not supported: Sluice runs no check scripts{script}; write a tcp, udp or http check"
                ),
            );
            return None;
        }
        other => {
            let why = match other {
                "PING_CHECK" => "Sluice has no ICMP check",
                "DNS_CHECK" => "Sluice has no DNS check: write a udp check whose send is a DNS query",
                "BFD_CHECK" => "Sluice has no BFD check of backends",
                "FILE_CHECK" => "Sluice reads no files to set backends' state",
                _ => "the importer does not know this checker",
            };
            report.warning(line, format!("{other} is not supported: {why}"));
            return None;
        }
    };

    let mut timers = inherited.clone();
    for child in statement.children() {
        if timers.read(child, report) {
            continue;
        }
        option(checker, child, port, report);
    }
    let probe = probe?;
    Some(resolve(checker, line, probe, &timers, default_delay_before_retry, report))
}

/// The options every checker may have, and the ones of a kind that `http` and `udp` read.
fn option(checker: &str, statement: &Statement, port: u16, report: &mut Report) {
    let line = statement.line;
    let keyword = statement.keyword.as_str();
    match keyword {
        // Read by `http`, `udp` or the SSL_GET message.
        "url" if checker == "HTTP_GET" || checker == "SSL_GET" => {}
        "payload" | "require_reply" if checker == "UDP_CHECK" => {}
        "connect_port" => {
            let written = statement.args.first().map(String::as_str).unwrap_or("");
            if written != port.to_string() {
                report.warning(
                    line,
                    format!(
                        "connect_port {written} not carried over: Sluice checks each backend at its own port ({port})"
                    ),
                );
            }
        }
        "connect_ip" | "bindto" | "bind_if" | "bind_port" | "fwmark" => report.warning(
            line,
            format!(
                "{keyword} not carried over: Sluice's checks go from this host to the backend's own address and port"
            ),
        ),
        "alpha" => report.note(line, "alpha: Sluice starts every backend down until its checks pass, as alpha asks"),
        "warmup" => report.warning(line, "warmup not carried over: Sluice starts checking every backend at once"),
        "log_all_failures" => report.note(line, "log_all_failures: Sluice logs every change of a backend's state"),
        "virtualhost" => report
            .warning(line, "virtualhost not carried over: Sluice's http check sends the backend's address as Host"),
        "http_protocol" => report.warning(line, "http_protocol not carried over: Sluice's http check speaks HTTP/1.0"),
        "fast_recovery" => report.note(line, "fast_recovery: Sluice checks one path, so there is nothing to speed up"),
        "enable_sni" | "sni_name" | "tls_compliant" => {
            report.warning(line, format!("{keyword} not carried over: Sluice has no TLS check"))
        }
        "min_reply_length" | "max_reply_length" if checker == "UDP_CHECK" => report
            .warning(line, format!("{keyword} not carried over: Sluice checks how the reply starts, not its length")),
        _ => report.warning(line, format!("{keyword} in {checker} not carried over: the importer does not know it")),
    }
}

/// Interval, timeout and fall from the timers, with keepalived's defaults.
fn resolve(
    checker: &str,
    line: usize,
    probe: Probe,
    timers: &Timers,
    default_delay_before_retry: Duration,
    report: &mut Report,
) -> Check {
    let interval = timers.delay_loop.map_or(DEFAULT_DELAY_LOOP, |(d, _)| d);
    let mut timeout = timers.connect_timeout.map_or(DEFAULT_CONNECT_TIMEOUT, |(d, _)| d);
    if timeout > interval {
        let (written, place) = match timers.connect_timeout {
            Some((d, place)) => (format!("connect_timeout {}", shown(d)), place),
            None => (format!("keepalived's default connect_timeout {}", shown(timeout)), line),
        };
        report.note(
            place,
            format!(
                "{written} is longer than the delay_loop {}: timeout = {:?}, since Sluice ends a check before the next",
                shown(interval),
                super::values::sluice_duration(interval)
            ),
        );
        timeout = interval;
    }
    let retry = timers.retry.map_or(if checker == "DNS_CHECK" { 3 } else { 1 }, |(n, _)| n);
    let fall = u32::try_from(retry.saturating_add(1)).unwrap_or(u32::MAX);
    if let Some((delay, place)) = timers.delay_before_retry {
        let default = default_delay_before_retry;
        if retry > 0 && delay != interval {
            report.warning(
                place,
                format!(
                    "delay_before_retry {} not carried over: Sluice checks again after the interval ({}), so a failed backend goes down after {fall} checks {} apart",
                    shown(delay),
                    shown(interval),
                    shown(interval)
                ),
            );
        } else if retry == 0 && delay != default {
            report.note(place, "delay_before_retry has no effect with retry 0: not carried over");
        }
    }
    Check { checker: checker.to_owned(), line, probe, interval, timeout, fall }
}

fn urls(statement: &Statement) -> impl Iterator<Item = &Statement> {
    statement.children().iter().filter(|s| s.keyword == "url")
}

/// The first value of the first `keyword` in a block.
fn field(block: &Statement, keyword: &str) -> Option<String> {
    block.children().iter().find(|s| s.keyword == keyword).and_then(|s| s.args.first().cloned())
}

/// HTTP_GET: the first url's path and status code.
fn http(statement: &Statement, report: &mut Report) -> Probe {
    let mut urls = urls(statement);
    let Some(first) = urls.next() else {
        report.warning(statement.line, "HTTP_GET without a url: path \"/\", expecting status 200");
        return Probe::Http { path: HTTP_DEFAULT_PATH.to_owned(), status: HTTP_DEFAULT_STATUS.to_owned() };
    };
    let mut path = HTTP_DEFAULT_PATH.to_owned();
    let mut status = None;
    for child in first.children() {
        let line = child.line;
        match child.keyword.as_str() {
            "path" => match child.args.first() {
                Some(p) if p.starts_with('/') => path.clone_from(p),
                other => report.warning(
                    line,
                    format!(
                        "path {:?} is not a request path starting with \"/\": \"/\" is requested",
                        other.map_or("", |p| p.as_str())
                    ),
                ),
            },
            "status_code" => status = Some(status_code(child, report)),
            "digest" => report.warning(line, "digest not checked: Sluice's http check compares the status code only"),
            "virtualhost" => report
                .warning(line, "virtualhost not carried over: Sluice's http check sends the backend's address as Host"),
            "regex" | "regex_no_match" | "regex_options" | "regex_stack" | "regex_min_offset" | "regex_max_offset" => {
                report.warning(
                    line,
                    format!("{} not checked: Sluice's http check reads the status line only", child.keyword),
                )
            }
            other => report.warning(line, format!("{other} in url not carried over: the importer does not know it")),
        }
    }
    let status = status.unwrap_or_else(|| {
        report.warning(first.line, "url without status_code: Sluice expects exactly 200 (keepalived accepts 200-299)");
        HTTP_DEFAULT_STATUS.to_owned()
    });
    for other in urls {
        let other_path = field(other, "path").unwrap_or_default();
        report.warning(
            other.line,
            format!("url {other_path:?} not checked: Sluice's http check requests one path, {path:?}"),
        );
    }
    Probe::Http { path, status }
}

/// One status code from `status_code 200` or `status_code 200-299 301`.
fn status_code(statement: &Statement, report: &mut Report) -> String {
    let written = statement.args.join(" ");
    let first = statement.args.first().map(|a| a.split('-').next().unwrap_or(a));
    let code = first.and_then(count).filter(|c| (100..=599).contains(c));
    match code {
        Some(code) if statement.args.len() == 1 && !written.contains('-') => code.to_string(),
        Some(code) => {
            report.warning(
                statement.line,
                format!(
                    "status_code {written} becomes expect = \"{code}\": Sluice's http check expects one status code"
                ),
            );
            code.to_string()
        }
        None => {
            report.warning(statement.line, format!("status_code {written:?} is not a status code: 200 expected"));
            HTTP_DEFAULT_STATUS.to_owned()
        }
    }
}

/// UDP_CHECK: a payload and a reply prefix, when both are written as text.
fn udp(statement: &Statement, report: &mut Report) -> Option<Probe> {
    let find = |keyword: &str| statement.children().iter().find(|s| s.keyword == keyword);
    let payload = find("payload");
    let reply = find("require_reply");
    let why = match (payload, reply) {
        (None, _) => Err("it has no payload (keepalived sends random bytes)"),
        (Some(_), None) => Err("it has no require_reply (keepalived takes no ICMP error as success)"),
        (Some(_), Some(reply)) if reply.args.is_empty() => {
            Err("require_reply has no pattern (keepalived accepts any reply)")
        }
        (Some(payload), Some(reply)) => udp_text(payload, reply, report),
    };
    match why {
        Ok(probe) => Some(probe),
        Err(why) => {
            report.warning(
                statement.line,
                format!(
                    "UDP_CHECK not carried over: {why}; Sluice's udp check sends a fixed payload and expects a reply starting with a fixed prefix (send, expect)"
                ),
            );
            None
        }
    }
}

fn udp_text(payload: &Statement, reply: &Statement, report: &mut Report) -> Result<Probe, &'static str> {
    let sent = hex(&payload.args).ok_or("payload is not a hex string")?;
    if sent.iter().any(|&(high, low)| high.is_none() || low.is_none()) {
        return Err("payload has X digits");
    }
    let send = String::from_utf8(hex_prefix(&sent)).map_err(|_| "payload is not UTF-8 text")?;
    if send.is_empty() {
        return Err("payload is empty");
    }
    let pattern = hex(&reply.args).ok_or("require_reply is not a hex string")?;
    let prefix = hex_prefix(&pattern);
    if prefix.is_empty() {
        return Err("require_reply starts with X digits");
    }
    if prefix.len() < pattern.len() {
        report.warning(
            reply.line,
            format!(
                "require_reply has X digits from byte {}: only the {} bytes before them are expected",
                prefix.len() + 1,
                prefix.len()
            ),
        );
    }
    let expect = String::from_utf8(prefix).map_err(|_| "require_reply is not UTF-8 text")?;
    Ok(Probe::Udp { send, expect })
}
