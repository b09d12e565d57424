use std::time::Duration;

use crate::config::test_support::{config, errors, warnings};
use crate::config::{CheckKind, Health, OnFailure};

/// A valid service whose `[service.health]` header is line 6; `keys` start at line 7.
fn health(keys: &str) -> String {
    format!(
        "[[service]]\nname = \"dns\"\nvip = \"198.18.0.10:53\"\nprotocol = \"udp\"\nlocal_ips = [\"198.18.1.100\"]\n\
         [service.health]\n{keys}"
    )
}

fn resolved(keys: &str) -> Health {
    let mut config = config(&health(keys));
    config.services.remove(0).health
}

#[test]
fn written_values_apply() {
    let health = resolved(
        "check = \"udp\"\ninterval = \"2s\"\ntimeout = \"1s500ms\"\nrise = 3\nfall = 1\n\
         send = \"ping\"\nexpect = \"pong\"\non_failure = \"remove\"\n",
    );
    let expected = Health {
        check: CheckKind::Udp,
        interval: Duration::from_secs(2),
        timeout: Duration::from_millis(1500),
        rise: 3,
        fall: 1,
        send: "ping".into(),
        expect: "pong".into(),
        on_failure: OnFailure::Remove,
    };
    assert_eq!(health, expected);
}

#[test]
fn an_empty_table_is_the_default() {
    assert_eq!(resolved(""), Health::default());
}

#[test]
fn http_defaults_to_get_slash_and_200() {
    let health = resolved("check = \"http\"\n");
    assert_eq!((health.send.as_str(), health.expect.as_str()), ("/", "200"));
    let health = resolved("check = \"http\"\nsend = \"/healthz\"\nexpect = \"204\"\n");
    assert_eq!((health.send.as_str(), health.expect.as_str()), ("/healthz", "204"));
}

#[test]
fn check_lists_its_choices() {
    assert_eq!(
        errors(&health("check = \"icmp\"\n")),
        r#"t.toml:7:9: invalid health check "icmp": expected "none", "tcp", "udp" or "http""#
    );
    assert_eq!(
        errors(&health("on_failure = \"drop\"\n")),
        r#"t.toml:7:14: invalid on_failure action "drop": expected "inhibit" or "remove""#
    );
}

#[test]
fn timers_are_durations() {
    let expected = [
        r#"t.toml:7:12: invalid duration "1": expected a number with a unit, e.g. "500ms", "2s", "5m""#,
        r#"t.toml:8:11: invalid duration "0ms": must be more than zero"#,
    ];
    assert_eq!(errors(&health("interval = \"1\"\ntimeout = \"0ms\"\n")), expected.join("\n"));
}

#[test]
fn a_check_ends_before_the_next_starts() {
    assert_eq!(
        errors(&health("interval = \"1s\"\ntimeout = \"2s\"\n")),
        "t.toml:8:11: health timeout 2s is longer than the interval 1s"
    );
    assert_eq!(errors(&health("timeout = \"1m\"\n")), "t.toml:7:11: health timeout 60s is longer than the interval 1s");
    assert_eq!(
        errors(&health("interval = \"200ms\"\n")),
        "t.toml:7:12: health interval 200ms is shorter than the default timeout 500ms"
    );
    assert_eq!(resolved("interval = \"500ms\"\n").timeout, Duration::from_millis(500));
}

#[test]
fn rise_and_fall_are_at_least_one() {
    let expected =
        ["t.toml:7:8: health rise must be at least 1, got 0", "t.toml:8:8: health fall must be at least 1, got -2"];
    assert_eq!(errors(&health("rise = 0\nfall = -2\n")), expected.join("\n"));
}

#[test]
fn udp_needs_a_payload_and_a_reply() {
    let expected = [
        "t.toml:6:1: health check \"udp\" needs a non-empty `send`: the payload to send",
        "t.toml:6:1: health check \"udp\" needs a non-empty `expect`: the prefix the reply must start with",
    ];
    assert_eq!(errors(&health("check = \"udp\"\n")), expected.join("\n"));
    assert_eq!(
        errors(&health("check = \"udp\"\nsend = \"\"\nexpect = \"pong\"\n")),
        "t.toml:8:8: health check \"udp\" needs a non-empty `send`: the payload to send"
    );
}

#[test]
fn http_needs_a_path_and_a_status_code() {
    assert_eq!(
        errors(&health("check = \"http\"\nsend = \"healthz\"\n")),
        r#"t.toml:8:8: health send "healthz" is not a request path: it must start with "/""#
    );
    for status in ["abc", "600", "99", "+200", "2000"] {
        assert_eq!(
            errors(&health(&format!("check = \"http\"\nexpect = \"{status}\"\n"))),
            format!("t.toml:8:10: health expect {status:?} is not an HTTP status code 100..=599")
        );
    }
}

#[test]
fn send_and_expect_without_use_are_warnings() {
    let expected = [
        r#"t.toml:8:8: warning: health send is not used by check "tcp""#,
        r#"t.toml:9:10: warning: health expect is not used by check "tcp""#,
    ];
    assert_eq!(warnings(&health("check = \"tcp\"\nsend = \"x\"\nexpect = \"y\"\n")), expected.join("\n"));
    assert_eq!(warnings(&health("send = \"x\"\n")), r#"t.toml:7:8: warning: health send is not used by check "none""#);
}
