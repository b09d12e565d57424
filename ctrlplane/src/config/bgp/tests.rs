use std::net::Ipv4Addr;
use std::time::Duration;

use crate::config::test_support::{config, errors};

const NEIGHBOR: &str = "[[bgp.neighbor]]\naddress = \"198.18.0.254\"\nremote_as = 65000\n";

#[test]
fn defaults_fill_everything_but_the_as() {
    let bgp = config(&format!("[bgp]\nlocal_as = 65001\n{NEIGHBOR}")).bgp.expect("bgp");
    assert_eq!(bgp.local_as, 65001);
    assert_eq!(bgp.router_id, Ipv4Addr::new(198, 18, 0, 1), "the first interface address");
    assert_eq!(bgp.hold, Duration::from_secs(3));
    assert!(bgp.bfd && bgp.announce_local_ips);
    assert_eq!((bgp.bfd_interval, bgp.bfd_multiplier), (Duration::from_millis(100), 5));
    assert_eq!(bgp.bird.to_str(), Some("bird"));
    assert_eq!(bgp.runtime_dir.to_str(), Some("/run/sluice/bird"));
    assert_eq!(bgp.drain, Duration::from_secs(2));
    assert_eq!(bgp.neighbors.len(), 1);
    assert_eq!(bgp.neighbors[0].address, Ipv4Addr::new(198, 18, 0, 254));
    assert_eq!((bgp.neighbors[0].remote_as, bgp.neighbors[0].password.as_deref()), (65000, None));
    assert!(config("").bgp.is_none(), "no [bgp], no routing daemon");
}

#[test]
fn written_values_replace_defaults() {
    let bgp = config(
        r#"
[bgp]
local_as = 4200000000
router_id = "198.18.0.11"
hold = "9s"
bfd = false
bfd_interval = "50ms"
bfd_multiplier = 3
bird = "/usr/sbin/bird"
runtime_dir = "/tmp/n1/bird"
announce_local_ips = false
drain = "0s"
[[bgp.neighbor]]
address = "198.18.0.254"
remote_as = 65000
password = "s3cret"
[[bgp.neighbor]]
address = "198.18.1.254"
remote_as = 4200000000
"#,
    )
    .bgp
    .expect("bgp");
    assert_eq!((bgp.local_as, bgp.router_id), (4_200_000_000, Ipv4Addr::new(198, 18, 0, 11)));
    assert_eq!(bgp.hold, Duration::from_secs(9));
    assert!(!bgp.bfd && !bgp.announce_local_ips);
    assert_eq!((bgp.bfd_interval, bgp.bfd_multiplier), (Duration::from_millis(50), 3));
    assert_eq!(bgp.bird.to_str(), Some("/usr/sbin/bird"));
    assert_eq!(bgp.runtime_dir.to_str(), Some("/tmp/n1/bird"));
    assert_eq!(bgp.drain, Duration::ZERO);
    assert_eq!(bgp.neighbors[0].password.as_deref(), Some("s3cret"));
    assert_eq!(bgp.neighbors[1].remote_as, 4_200_000_000, "iBGP is allowed");
}

#[test]
fn as_numbers_are_checked() {
    assert_eq!(
        errors(&format!("[bgp]\nlocal_as = 0\n{NEIGHBOR}")),
        "t.toml:2:12: bgp.local_as must be at least 1, got 0"
    );
    assert_eq!(
        errors(&format!("[bgp]\nlocal_as = 4294967296\n{NEIGHBOR}")),
        "t.toml:2:12: bgp.local_as must be at most 4294967295, got 4294967296"
    );
    assert_eq!(
        errors(&format!("[bgp]\nlocal_as = 23456\n{NEIGHBOR}")),
        "t.toml:2:12: bgp.local_as 23456 is AS_TRANS (RFC 6793), which no router may use as its AS"
    );
    assert_eq!(
        errors("[bgp]\nlocal_as = 65001\n[[bgp.neighbor]]\naddress = \"198.18.0.254\"\nremote_as = -1\n"),
        "t.toml:5:13: bgp neighbor remote_as must be at least 1, got -1"
    );
    assert_eq!(errors(&format!("[bgp]\n{NEIGHBOR}")), "t.toml:1:1: missing key `local_as` in [bgp]");
}

#[test]
fn neighbors_are_on_link_and_unique() {
    let twice = format!("[bgp]\nlocal_as = 65001\n{NEIGHBOR}{NEIGHBOR}");
    assert_eq!(errors(&twice), "t.toml:7:11: duplicate bgp neighbor 198.18.0.254 (first at line 4, column 11)");
    assert_eq!(
        errors("[bgp]\nlocal_as = 65001\n[[bgp.neighbor]]\naddress = \"198.19.0.1\"\nremote_as = 65000\n"),
        "t.toml:4:11: bgp neighbor 198.19.0.1 is not on a connected network: no interface address covers it \
         (BGP sessions here are single-hop)"
    );
    assert_eq!(
        errors("[bgp]\nlocal_as = 65001\n[[bgp.neighbor]]\naddress = \"198.18.0.1\"\nremote_as = 65000\n"),
        "t.toml:4:11: bgp neighbor 198.18.0.1 is the address of interface wan itself"
    );
    assert_eq!(
        errors("[bgp]\nlocal_as = 65001\n[[bgp.neighbor]]\naddress = \"router\"\nremote_as = 65000\n"),
        "t.toml:4:11: invalid bgp neighbor address \"router\": expected an IPv4 address a.b.c.d"
    );
    assert_eq!(
        errors("[bgp]\nlocal_as = 65001\n[[bgp.neighbor]]\nremote_as = 65000\n"),
        "t.toml:3:1: missing key `address` in [[bgp.neighbor]]"
    );
    assert_eq!(
        errors("[bgp]\nlocal_as = 65001\n"),
        "t.toml:1:1: [bgp] has no [[bgp.neighbor]]: at least one router to announce to is needed"
    );
    assert_eq!(
        errors(&format!("[bgp]\nlocal_as = 65001\n{NEIGHBOR}peer = 1\n")),
        "t.toml:6:1: unknown field `peer`, expected one of `address`, `remote_as`, `password`"
    );
}

#[test]
fn durations_are_checked() {
    let with = |line: &str| errors(&format!("[bgp]\nlocal_as = 65001\n{line}\n{NEIGHBOR}"));
    assert_eq!(
        with("hold = \"2s\""),
        "t.toml:3:8: bgp.hold must be whole seconds from 3s to 65535s (RFC 4271), got 2s"
    );
    assert_eq!(
        with("hold = \"3500ms\""),
        "t.toml:3:8: bgp.hold must be whole seconds from 3s to 65535s (RFC 4271), got 3.5s"
    );
    assert_eq!(with("hold = \"0s\""), "t.toml:3:8: invalid duration \"0s\": must be more than zero");
    assert_eq!(
        with("drain = 2"),
        "t.toml:3:9: invalid duration 2: expected a number with a unit, e.g. \"500ms\", \"2s\", \"5m\""
    );
    assert_eq!(
        with("bfd_interval = \"5ms\""),
        "t.toml:3:16: bgp.bfd_interval must be whole milliseconds from 10ms to 10s"
    );
    assert_eq!(with("bfd_multiplier = 0"), "t.toml:3:18: bgp.bfd_multiplier must be at least 1, got 0");
}

#[test]
fn text_that_bird_reads_in_quotes_is_checked() {
    let with = |line: &str| errors(&format!("[bgp]\nlocal_as = 65001\n{line}\n{NEIGHBOR}"));
    assert_eq!(
        with("runtime_dir = \"run/bird\""),
        "t.toml:3:15: bgp.runtime_dir must be an absolute path, got \"run/bird\""
    );
    assert_eq!(
        with("runtime_dir = '/run/\"x'"),
        "t.toml:3:15: bgp.runtime_dir may not contain quotes, backslashes or control characters"
    );
    assert_eq!(with("router_id = \"0.0.0.0\""), "t.toml:3:13: bgp.router_id 0.0.0.0 is not a valid router id");
    assert_eq!(with("bird = \"\""), "t.toml:3:8: bgp.bird is empty: expected the BIRD 2 binary, a name or a path");
    let password = |p: &str| errors(&format!("[bgp]\nlocal_as = 65001\n{NEIGHBOR}password = '{p}'\n"));
    assert_eq!(
        password("a\"b"),
        "t.toml:6:12: bgp neighbor password may not contain quotes, backslashes or control characters"
    );
    assert_eq!(password(""), "t.toml:6:12: bgp neighbor password must be 1 to 80 bytes");
}

#[test]
fn router_id_needs_an_address_somewhere() {
    let text = format!(
        "[[interface]]\nname = \"wan\"\ndevice = \"net0\"\naddresses = []\n[bgp]\nlocal_as = 65001\n{NEIGHBOR}"
    );
    let e = errors(&text);
    assert!(e.starts_with("t.toml:5:1: [bgp] needs a router_id: no interface has an address to take it from"), "{e}");
}
