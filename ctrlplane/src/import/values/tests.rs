//! keepalived's value forms and Sluice's duration text.

use std::time::Duration;

use super::*;

#[test]
fn timers_are_seconds_with_up_to_six_decimals() {
    assert_eq!(timer("3"), Some(Duration::from_secs(3)));
    assert_eq!(timer("2.5"), Some(Duration::from_millis(2500)));
    assert_eq!(timer(".25"), Some(Duration::from_millis(250)));
    assert_eq!(timer("0.000100"), Some(Duration::from_micros(100)));
    for bad in ["", ".", "3s", "-1", "1.0000001", "1e3", "one"] {
        assert_eq!(timer(bad), None, "{bad:?}");
    }
}

#[test]
fn sluice_durations_are_whole_seconds_or_milliseconds_rounded_up() {
    assert_eq!(sluice_duration(Duration::from_secs(60)), "60s");
    assert_eq!(sluice_duration(Duration::from_millis(2500)), "2500ms");
    assert_eq!(sluice_duration(Duration::from_micros(100)), "1ms");
    assert_eq!(sluice_duration(Duration::from_micros(1500)), "2ms");
    assert_eq!(shown(Duration::from_millis(2500)), "2.5s");
    assert_eq!(shown(Duration::from_millis(100)), "100ms");
}

#[test]
fn flags_take_keepalived_booleans_and_default_to_true() {
    assert_eq!(flag(&[]), Some(true));
    assert_eq!(flag(&["off".to_owned()]), Some(false));
    assert_eq!(flag(&["Yes".to_owned()]), Some(true));
    assert_eq!(flag(&["maybe".to_owned()]), None);
}

#[test]
fn hex_reads_keepalived_free_form() {
    // The man page's example: Ab12f 3 456 546443123 is AB 12 0F 03 45 06 54 64 43 12 03.
    let words: Vec<String> = ["Ab12f", "3", "456", "546443123"].map(str::to_owned).into();
    let bytes = hex_prefix(&hex(&words).expect("hex"));
    assert_eq!(bytes, [0xab, 0x12, 0x0f, 0x03, 0x45, 0x06, 0x54, 0x64, 0x43, 0x12, 0x03]);
    assert_eq!(hex(&["zz".to_owned()]), None);
}

#[test]
fn hex_prefix_stops_at_the_first_wildcard() {
    let pattern = hex(&["6f6b".to_owned(), "XX".to_owned(), "21".to_owned()]).expect("hex");
    assert_eq!(pattern.len(), 4);
    assert_eq!(hex_prefix(&pattern), b"ok");
    let half = hex(&["6x".to_owned()]).expect("hex");
    assert_eq!(hex_prefix(&half), b"");
}

#[test]
fn ports_are_1_to_65535() {
    assert_eq!(port("80"), Some(80));
    assert_eq!(port("0"), None);
    assert_eq!(port("65536"), None);
    assert_eq!(port("http"), None);
}
