//! Whole files: the contract's example, the reference config, defaults, TOML-level errors.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::test_support::{config, errors, HOST};
use super::*;

/// The first TOML block of docs/interface.md's config file section, as written there.
fn interface_md_example() -> &'static str {
    let doc = include_str!("../../../docs/interface.md");
    let section = &doc[doc.find("## The config file").expect("the config section")..];
    let block = &section[section.find("```toml\n").expect("a toml block") + "```toml\n".len()..];
    &block[..block.find("```").expect("the block's end")]
}

fn net(text: &str) -> Ipv4Net {
    text.parse().expect(text)
}

fn v4(a: u8, b: u8, c: u8, d: u8) -> Ipv4Addr {
    Ipv4Addr::new(a, b, c, d)
}

fn interface(name: &str, device: &str, address: &str) -> Interface {
    Interface { name: name.into(), device: device.into(), addresses: vec![net(address)] }
}

#[test]
fn the_interface_md_example_means_what_it_says() {
    let parsed = parse(interface_md_example(), "sluice.toml", &HOST).expect("the contract's example is valid");
    let expected = Config {
        dpdk: Dpdk {
            args: ["--no-pci", "--vdev=net_af_packet0,iface=lb0", "--vdev=net_af_packet1,iface=lb1"]
                .map(String::from)
                .to_vec(),
            hugepages: true,
            mbufs: 16383,
        },
        cpu: Cpu { control: 0, workers: vec![1], idle: IdleMode::Busy },
        api: Api {
            socket: PathBuf::from("/run/sluice/sluice.sock"),
            metrics: SocketAddr::from((v4(127, 0, 0, 1), 9273)),
        },
        sessions: Sessions { capacity: 1_048_576, when_full: WhenFull::Evict },
        steering: Steering { mode: SteeringMode::Auto },
        timeouts: Timeouts {
            tcp_syn: Duration::from_secs(30),
            tcp_established: Duration::from_secs(900),
            tcp_closing: Duration::from_secs(10),
            udp: Duration::from_secs(30),
            ..Timeouts::default()
        },
        interfaces: vec![interface("wan", "net_af_packet0", "198.18.0.1/24")],
        routes: vec![Route { prefix: net("0.0.0.0/0"), via: v4(198, 18, 0, 254) }],
        services: vec![Service {
            name: "dns".into(),
            vip: SocketAddrV4::new(v4(198, 18, 0, 10), 53),
            protocol: Protocol::Udp,
            scheduler: Scheduler::Rr,
            per_packet: true,
            local_ips: vec![v4(198, 18, 1, 100)],
            min_active: 1,
            client_address: ClientAddress::None,
            synproxy: false,
            limits: Limits::default(),
            allow: vec![],
            deny: vec![],
            health: Health {
                check: CheckKind::Udp,
                interval: Duration::from_secs(1),
                timeout: Duration::from_millis(500),
                rise: 2,
                fall: 2,
                send: "ping".into(),
                expect: "pong".into(),
                on_failure: OnFailure::Inhibit,
            },
            backends: vec![Backend { address: SocketAddrV4::new(v4(198, 18, 1, 2), 5353), weight: 1 }],
        }],
        bgp: None,
        cluster: None,
        warnings: vec![],
    };
    assert_eq!(parsed, expected);
}

#[test]
fn omitted_sections_take_the_documented_defaults() {
    let config = config("");
    assert_eq!(config.dpdk, Dpdk { args: vec![], hugepages: true, mbufs: 16383 });
    assert_eq!(config.cpu, Cpu { control: 0, workers: vec![1], idle: IdleMode::Busy });
    assert_eq!(config.api.socket, Path::new("/run/sluice/sluice.sock"));
    assert_eq!(config.api.metrics.to_string(), "127.0.0.1:9273");
    assert_eq!(config.sessions.capacity, 1 << 20);
    assert_eq!(config.steering.mode, SteeringMode::Auto);
    assert_eq!(config.timeouts.all().map(|t| t.as_secs()), [30, 900, 120, 60, 30, 10, 10, 30, 10]);
    assert_eq!(config.sessions.when_full, WhenFull::Evict);
    assert!(config.routes.is_empty() && config.services.is_empty() && config.warnings.is_empty());
    // Empty sections too.
    let empty = super::test_support::config("[dpdk]\n[cpu]\n[api]\n[sessions]\n[steering]\n[timeouts]\n");
    assert_eq!(Config { warnings: vec![], ..empty }, Config { warnings: vec![], ..config });
}

#[test]
fn the_reference_config_parses_cleanly() {
    let text = include_str!("../../../conf/example.toml");
    let config = parse(text, "conf/example.toml", &HOST).unwrap_or_else(|d| panic!("refused:\n{d}"));
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    assert_eq!(config.services.len(), 2);
    assert_eq!(config.services[1].health.check, CheckKind::Http);
    // Its [bgp] writes every key at its default.
    let mut bgp = crate::config::Bgp::defaults(65001, v4(198, 18, 0, 1));
    bgp.neighbors.push(crate::config::BgpNeighbor { address: v4(198, 18, 0, 254), remote_as: 65000, password: None });
    assert_eq!(config.bgp, Some(bgp));
    let cluster = config.cluster.expect("[cluster]");
    assert_eq!((cluster.node, cluster.address, cluster.port), (1, v4(198, 18, 0, 1), 8849));
    assert_eq!((cluster.hello, cluster.dead_after), (Duration::from_millis(100), Duration::from_millis(500)));
    assert_eq!(cluster.key_file, PathBuf::from("/etc/sluice/cluster.key"));
}

#[test]
fn load_reads_the_file_and_names_it() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../conf/example.toml");
    let config = load(&path, &HOST).unwrap_or_else(|d| panic!("refused:\n{d}"));
    assert_eq!(config.interfaces.len(), 2);

    let missing = Path::new("/nonexistent/sluice.toml");
    let refused = load(missing, &HOST).err().map(|d| d.to_string()).unwrap_or_default();
    assert!(refused.starts_with("/nonexistent/sluice.toml:1:1: cannot read config file: "), "{refused}");
}

#[test]
fn toml_syntax_errors_are_one_line_with_a_place() {
    assert_eq!(errors("[dpdk]\nargs = [\"a\",\nmbufs = 5\n"), "t.toml:3:1: invalid array: expected `]`");
    assert_eq!(errors("[dpdk]\n[dpdk]\n"), "t.toml:2:1: invalid table header: duplicate key `dpdk` in document root");
    // Found by fuzzing (fuzz/fuzz_targets/config_parse.rs): the parser's own message is empty.
    assert_eq!(errors("#\u{3}\u{0}"), "t.toml:1:2: invalid TOML syntax");
}

#[test]
fn wrong_types_stop_at_the_first() {
    assert_eq!(
        errors("[dpdk]\nmbufs = \"x\"\n[sessions]\ncapacity = true\n"),
        r#"t.toml:2:9: invalid type: string "x", expected i64"#
    );
}

#[test]
fn unknown_keys_are_errors_at_the_key() {
    assert_eq!(
        errors("[dpdk]\nmbuf = 5\n"),
        "t.toml:2:1: unknown field `mbuf`, expected one of `args`, `hugepages`, `mbufs`"
    );
    assert_eq!(
        errors("\n[timeout]\n"),
        "t.toml:2:2: unknown field `timeout`, expected one of `dpdk`, `cpu`, `api`, `sessions`, `steering`, `timeouts`, `interface`, `route`, `service`, `bgp`, `cluster`"
    );
    let nested =
        "[[service]]\nname = \"a\"\n[service.health]\n  intervall = \"1s\"\n[[service.backend]]\naddr = \"x\"\n";
    assert_eq!(
        errors(nested),
        "t.toml:4:3: unknown field `intervall`, expected one of `check`, `interval`, `timeout`, `rise`, `fall`, `send`, `expect`, `on_failure`"
    );
}

#[test]
fn diagnostics_render_as_file_line_col() {
    let diagnostics = Diagnostics(vec![
        Diagnostic { file: "a.toml".into(), line: 3, col: 7, message: "bad".into(), severity: Severity::Error },
        Diagnostic { file: "a.toml".into(), line: 9, col: 1, message: "hmm".into(), severity: Severity::Warning },
    ]);
    assert_eq!(diagnostics.to_string(), "a.toml:3:7: bad\na.toml:9:1: warning: hmm");
}
