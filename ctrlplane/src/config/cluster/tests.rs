use std::net::Ipv4Addr;
use std::time::Duration;

use crate::config::test_support::{config, errors, warnings};

const BGP: &str = "[bgp]\nlocal_as = 65001\n[[bgp.neighbor]]\naddress = \"198.18.0.254\"\nremote_as = 65000\n";

#[test]
fn defaults_and_written_values() {
    let c = config(&format!("[cluster]\nnode = 1\naddress = \"198.18.0.1\"\npeers = [\"198.18.0.12\"]\n{BGP}"))
        .cluster
        .expect("cluster");
    assert_eq!((c.node, c.address, c.port), (1, Ipv4Addr::new(198, 18, 0, 1), 8849));
    assert_eq!(c.peers, [Ipv4Addr::new(198, 18, 0, 12)]);
    assert_eq!(c.key_file.to_str(), Some("/etc/sluice/cluster.key"));
    assert_eq!((c.hello, c.dead_after), (Duration::from_millis(100), Duration::from_millis(500)));
    let c = config(&format!(
        "[cluster]\nnode = 65535\naddress = \"198.18.1.1\"\npeers = [\"198.18.0.12\", \"198.19.0.1\"]\nport = 9000\n\
         key_file = \"/tmp/k\"\nhello = \"50ms\"\ndead_after = \"1s\"\n{BGP}"
    ))
    .cluster
    .expect("cluster");
    assert_eq!((c.node, c.port, c.peers.len()), (65535, 9000, 2));
    assert_eq!(c.key_file.to_str(), Some("/tmp/k"));
    assert_eq!((c.hello, c.dead_after), (Duration::from_millis(50), Duration::from_secs(1)));
}

#[test]
fn refusals() {
    let with = |body: &str| errors(&format!("[cluster]\n{body}\n{BGP}"));
    assert_eq!(
        with("node = 0\naddress = \"198.18.0.1\"\npeers = [\"198.18.0.12\"]"),
        "t.toml:2:8: cluster.node must be at least 1, got 0"
    );
    assert_eq!(
        with("node = 1\naddress = \"198.18.0.9\"\npeers = [\"198.18.0.12\"]"),
        "t.toml:3:11: cluster address 198.18.0.9 is none of this node's interface addresses"
    );
    assert_eq!(
        with("node = 1\naddress = \"198.18.0.1\"\npeers = [\"198.18.0.1\"]"),
        "t.toml:4:10: cluster peer 198.18.0.1 is this node's own cluster address"
    );
    assert_eq!(
        with("node = 1\naddress = \"198.18.0.1\"\npeers = [\"198.18.0.2\", \"198.18.0.2\"]"),
        "t.toml:4:24: duplicate cluster peer 198.18.0.2 (first at line 4, column 10)"
    );
    assert_eq!(
        with("node = 1\naddress = \"198.18.0.1\"\npeers = [\"x\"]"),
        "t.toml:4:10: invalid cluster peer \"x\": expected an IPv4 address a.b.c.d"
    );
    assert_eq!(
        with("node = 1\naddress = \"198.18.0.1\"\npeers = [\"198.18.0.12\"]\nkey_file = \"k\""),
        "t.toml:5:12: cluster.key_file must be an absolute path, got \"k\""
    );
    assert_eq!(
        with("node = 1\naddress = \"198.18.0.1\"\npeers = [\"198.18.0.12\"]\nhello = \"300ms\""),
        "t.toml:1:1: cluster.dead_after (500ms) must be at least twice cluster.hello (300ms): one lost hello must not kill a peer"
    );
    assert_eq!(with("node = 1\naddress = \"198.18.0.1\""), "t.toml:1:1: missing key `peers` in [cluster]");
    assert_eq!(
        with("node = 1\naddress = \"198.18.0.1\"\npeers = [\"198.18.0.12\"]\nport = 70000"),
        "t.toml:5:8: cluster.port must be at most 65535, got 70000"
    );
}

#[test]
fn warnings_for_what_works_but_does_little() {
    let w = warnings("[cluster]\nnode = 1\naddress = \"198.18.0.1\"\npeers = []\n");
    assert!(w.contains("t.toml:4:9: warning: cluster.peers is empty: this node syncs with nobody"), "{w}");
    assert!(w.contains("t.toml:1:1: warning: [cluster] without [bgp]"), "{w}");
}
