use std::net::{Ipv4Addr, SocketAddrV4};

use crate::config::test_support::{config, errors, errors_on};
use crate::config::{Backend, ClientAddress, Health, Host, Protocol, Scheduler};

/// A minimal valid service, lines 1 to 5.
const DNS: &str = r#"[[service]]
name = "dns"
vip = "198.18.0.10:53"
protocol = "udp"
local_ips = ["198.18.1.100"]
"#;

/// `DNS` with line `line` (1-based) replaced by `with`.
fn dns_with(line: usize, with: &str) -> String {
    let mut lines: Vec<&str> = DNS.lines().collect();
    lines[line - 1] = with;
    lines.join("\n") + "\n"
}

#[test]
fn defaults_apply() {
    let config = config(DNS);
    let dns = &config.services[0];
    assert_eq!(dns.name, "dns");
    assert_eq!(dns.vip, SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 10), 53));
    assert_eq!(dns.protocol, Protocol::Udp);
    assert_eq!(dns.scheduler, Scheduler::Rr);
    assert!(!dns.per_packet);
    assert_eq!(dns.local_ips, [Ipv4Addr::new(198, 18, 1, 100)]);
    assert_eq!(dns.min_active, 1);
    assert_eq!(dns.client_address, ClientAddress::None);
    assert_eq!(dns.health, Health::default());
    assert!(dns.backends.is_empty());
}

#[test]
fn written_values_apply() {
    let text = format!(
        "{DNS}scheduler = \"maglev\"\nper_packet = true\nmin_active = 2\nclient_address = \"proxy-v2\"\n\
         [[service.backend]]\naddress = \"198.18.1.2:53\"\nweight = 0\n\
         [[service.backend]]\naddress = \"198.18.1.3:53\"\n\
         [[service]]\nname = \"web\"\nvip = \"198.18.0.10:53\"\nprotocol = \"tcp\"\nlocal_ips = [\"198.18.1.100\"]\n"
    );
    let config = config(&text);
    let dns = &config.services[0];
    assert_eq!(dns.scheduler, Scheduler::Maglev);
    assert!(dns.per_packet);
    assert_eq!(dns.min_active, 2);
    assert_eq!(dns.client_address, ClientAddress::ProxyV2);
    let backend = |d: u8, weight| Backend { address: SocketAddrV4::new(Ipv4Addr::new(198, 18, 1, d), 53), weight };
    assert_eq!(dns.backends, [backend(2, 0), backend(3, 1)]);
    // Same VIP with another protocol, and a local IP shared between services: both fine.
    assert_eq!(config.services[1].protocol, Protocol::Tcp);
}

#[test]
fn missing_keys_point_at_the_header() {
    let expected =
        ["name", "vip", "protocol", "local_ips"].map(|key| format!("t.toml:1:1: missing key `{key}` in [[service]]"));
    assert_eq!(errors("[[service]]\n"), expected.join("\n"));
}

#[test]
fn names_are_unique_and_not_empty() {
    assert_eq!(errors(&dns_with(2, "name = \"\"")), "t.toml:2:8: service name is empty");
    let twice = format!("{DNS}{}", dns_with(3, "vip = \"198.18.0.11:53\""));
    assert_eq!(errors(&twice), r#"t.toml:7:8: duplicate service name "dns" (first at line 2, column 8)"#);
}

#[test]
fn vips_are_addresses_with_a_port() {
    assert_eq!(
        errors(&dns_with(3, "vip = \"198.18.0.10\"")),
        r#"t.toml:3:7: invalid vip "198.18.0.10": expected an IPv4 address and a port, a.b.c.d:port"#
    );
    assert_eq!(
        errors(&dns_with(3, "vip = \"198.18.0.10:0\"")),
        "t.toml:3:7: vip 198.18.0.10:0 has port 0: expected a port 1..=65535"
    );
}

#[test]
fn one_service_per_vip_and_protocol() {
    let twice = format!("{DNS}{}", dns_with(2, "name = \"dns2\""));
    assert_eq!(errors(&twice), "t.toml:8:7: duplicate vip 198.18.0.10:53 (udp) (first at line 3, column 7)");
}

#[test]
fn keywords_list_their_choices() {
    assert_eq!(
        errors(&dns_with(4, "protocol = \"sctp\"")),
        r#"t.toml:4:12: invalid protocol "sctp": expected "udp" or "tcp""#
    );
    assert_eq!(
        errors(&format!("{DNS}scheduler = \"lc\"\n")),
        r#"t.toml:6:13: invalid scheduler "lc": expected "rr", "wrr", "wlc", "sh" or "maglev""#
    );
    assert_eq!(
        errors(&format!("{DNS}client_address = \"proxy-v1\"\n")),
        r#"t.toml:6:18: invalid client address mode "proxy-v1": expected "none", "proxy-v2" or "toa""#
    );
    assert_eq!(
        errors(&format!("{DNS}client_address = \"toa\"\n")),
        r#"t.toml:6:18: client_address = "toa" is a TCP option: for tcp services only"#
    );
}

#[test]
fn per_packet_is_for_udp() {
    let tcp = dns_with(4, "protocol = \"tcp\"") + "per_packet = true\n";
    assert_eq!(
        errors(&tcp),
        "t.toml:6:14: per_packet is for udp services only: a tcp connection stays with one backend"
    );
}

#[test]
fn every_worker_gets_a_local_ip() {
    let text = format!("[cpu]\nworkers = [1, 2]\n{DNS}");
    assert_eq!(
        errors_on(&text, &Host { cpus: 4 }),
        "t.toml:7:13: service dns has 1 local IP for 2 workers: each worker needs at least one"
    );
}

#[test]
fn local_ips_are_the_services_own() {
    let list = r#"local_ips = ["x", "198.18.1.100", "198.18.1.100", "198.18.1.1", "198.18.0.10"]"#;
    let expected = [
        r#"t.toml:5:14: invalid local IP "x": expected an IPv4 address a.b.c.d"#,
        "t.toml:5:35: duplicate local IP 198.18.1.100 (first at line 5, column 19)",
        "t.toml:5:51: local IP 198.18.1.1 is the address of interface lan",
        "t.toml:5:65: local IP 198.18.0.10 is the VIP of service dns",
    ];
    assert_eq!(errors(&dns_with(5, list)), expected.join("\n"));
}

#[test]
fn min_active_is_a_reachable_quorum() {
    let backends =
        "[[service.backend]]\naddress = \"198.18.1.2:53\"\n[[service.backend]]\naddress = \"198.18.1.3:53\"\n";
    assert_eq!(
        errors(&format!("{DNS}min_active = 3\n{backends}")),
        "t.toml:6:14: min_active 3 is more than the 2 backends of service dns: its VIP would never answer"
    );
    assert_eq!(errors(&format!("{DNS}min_active = -1\n")), "t.toml:6:14: min_active must be at least 0, got -1");
    // No backend yet: nothing to compare with.
    assert_eq!(config(&format!("{DNS}min_active = 5\n")).services[0].min_active, 5);
}

#[test]
fn backends_are_unique_addresses_with_bounded_weights() {
    let text = format!(
        "{DNS}[[service.backend]]\naddress = \"198.18.1.2:5353\"\nweight = 70000\n\
         [[service.backend]]\naddress = \"198.18.1.2:5353\"\n\
         [[service.backend]]\nweight = 1\n\
         [[service.backend]]\naddress = \"198.18.1.3\"\n\
         [[service.backend]]\naddress = \"198.18.1.4:0\"\nweight = -1\n"
    );
    let expected = [
        "t.toml:8:10: backend weight must be at most 65535, got 70000",
        "t.toml:10:11: duplicate backend 198.18.1.2:5353 (first at line 7, column 11)",
        "t.toml:11:1: missing key `address` in [[service.backend]]",
        r#"t.toml:14:11: invalid backend address "198.18.1.3": expected an IPv4 address and a port, a.b.c.d:port"#,
        "t.toml:16:11: backend address 198.18.1.4:0 has port 0: expected a port 1..=65535",
        "t.toml:17:10: backend weight must be at least 0, got -1",
    ];
    assert_eq!(errors(&text), expected.join("\n"));
}

#[test]
fn a_vip_clash_is_found_even_in_a_service_with_other_errors() {
    let other = "[[service]]\nname = \"other\"\nvip = \"198.18.0.20:53\"\nprotocol = \"udp\"\n\
                 local_ips = [\"198.18.0.10\"]\n";
    let text = format!("{DNS}scheduler = \"fast\"\n{other}");
    let expected = [
        r#"t.toml:6:13: invalid scheduler "fast": expected "rr", "wrr", "wlc", "sh" or "maglev""#,
        "t.toml:11:14: local IP 198.18.0.10 is the VIP of service dns",
    ];
    assert_eq!(errors(&text), expected.join("\n"));
}

#[test]
fn with_several_workers_a_shared_local_ip_must_fall_to_one_worker() {
    let two = |a: &str, b: &str| {
        format!(
            "[cpu]\ncontrol = 0\nworkers = [1, 2]\n[[service]]\nname = \"a\"\nvip = \"198.18.0.10:53\"\nprotocol = \"udp\"\n\
             local_ips = [{a}]\n[[service]]\nname = \"b\"\nvip = \"198.18.0.10:80\"\nprotocol = \"tcp\"\nlocal_ips = [{b}]\n"
        )
    };
    // Same position: the same worker owns it in both services.
    let ok = two("\"198.18.1.100\", \"198.18.1.101\"", "\"198.18.1.100\", \"198.18.1.102\"");
    crate::config::test_support::config_on(&ok, &Host { cpus: 4 });
    assert_eq!(
        errors_on(&two("\"198.18.1.100\", \"198.18.1.101\"", "\"198.18.1.102\", \"198.18.1.100\""), &Host { cpus: 4 }),
        "t.toml:13:30: local IP 198.18.1.100 is shared with service a but would belong to another worker here \
         (position 2 vs 1 of 2 workers): list it at the same position modulo 2, or give each service its own local IPs"
    );
}

#[test]
fn limits_and_access_lists_parse_and_bad_prefixes_point_at_themselves() {
    let text = format!(
        "{DNS}max_sessions = 1000\nnew_sessions_per_second = 50\nper_client_new_sessions_per_second = 5\n\
         allow = [\"198.18.0.0/16\"]\ndeny = [\"198.18.0.128/25\", \"198.19.0.7/32\"]\n"
    );
    let config = config(&text);
    let dns = &config.services[0];
    assert_eq!(
        dns.limits,
        crate::config::Limits {
            max_sessions: 1000,
            new_sessions_per_second: 50,
            per_client_new_sessions_per_second: 5
        }
    );
    assert_eq!(dns.allow.iter().map(|n| n.to_string()).collect::<Vec<_>>(), ["198.18.0.0/16"]);
    assert_eq!(dns.deny.len(), 2);
    assert_eq!(crate::config::test_support::config(DNS).services[0].limits, crate::config::Limits::default());
    assert_eq!(
        errors(&format!("{DNS}deny = [\"198.18.0.1/24\"]\n")),
        "t.toml:6:9: deny prefix 198.18.0.1/24 has host bits set: the network is 198.18.0.0/24"
    );
    assert_eq!(
        errors(&format!("{DNS}allow = [\"198.18.0.0/33\"]\n")),
        "t.toml:6:10: invalid allow prefix \"198.18.0.0/33\": expected a.b.c.d/len with len 0..=32"
    );
    assert!(errors(&format!("{DNS}max_sessions = -1\n")).starts_with("t.toml:6:16: "));
}
