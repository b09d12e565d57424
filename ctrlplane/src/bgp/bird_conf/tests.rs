use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use super::*;
use crate::config::{Bgp, BgpNeighbor};

fn bgp() -> Bgp {
    let mut bgp = Bgp::defaults(65001, Ipv4Addr::new(198, 18, 0, 11));
    bgp.neighbors = vec![
        BgpNeighbor { address: Ipv4Addr::new(198, 18, 0, 254), remote_as: 65000, password: None },
        BgpNeighbor { address: Ipv4Addr::new(198, 18, 0, 253), remote_as: 65001, password: Some("s3cret".into()) },
    ];
    bgp
}

fn paths() -> Paths {
    Paths::new(Path::new("/run/sluice/bird"))
}

#[test]
fn paths_live_in_the_runtime_dir() {
    let p = paths();
    assert_eq!(p.config, Path::new("/run/sluice/bird/bird.conf"));
    assert_eq!(p.routes, Path::new("/run/sluice/bird/routes.conf"));
    assert_eq!(p.socket, Path::new("/run/sluice/bird/bird.ctl"));
    assert_eq!(p.backup, Path::new("/run/sluice/bird/backup.conf"));
}

#[test]
fn one_bgp_protocol_per_neighbor_importing_nothing() {
    let text = config_text(&bgp(), &paths());
    assert!(text.contains("router id 198.18.0.11;\n"), "{text}");
    for name in ["bgp_198_18_0_254", "bgp_198_18_0_253"] {
        assert_eq!(text.matches(&format!("protocol bgp {name} {{")).count(), 1, "{text}");
    }
    assert_eq!(text.matches("import none;").count(), 2);
    assert_eq!(text.matches("export filter sluice_export;").count(), 2);
    assert_eq!(text.matches("next hop self;").count(), 2);
    assert_eq!(text.matches("graceful restart off;").count(), 2);
    assert!(text.contains("    neighbor 198.18.0.254 as 65000;\n    direct;\n"));
    assert!(text.contains("    neighbor 198.18.0.253 as 65001;\n"), "iBGP neighbour");
    assert_eq!(text.matches("password").count(), 1);
    assert!(text.contains("    password \"s3cret\";\n"));
    assert!(text.contains("    local as 65001;\n"));
    assert!(text.contains("    hold time 3;\n    keepalive time 1;\n"));
    assert!(!text.contains("protocol kernel"), "announced routes stay out of every kernel table");
}

#[test]
fn the_static_protocol_includes_the_routes_file_at_line_start() {
    let text = config_text(&bgp(), &paths());
    // BIRD takes `include` only at the start of a line.
    assert!(text.contains("\ninclude \"/run/sluice/bird/routes.conf\";\n"), "{text}");
    assert!(text.contains("protocol static sluice_routes {\n    ipv4;\n"));
    assert!(text.contains("if proto = \"sluice_routes\" && net.len = 32 then accept;\n"));
    assert!(text.contains("\ninclude \"/run/sluice/bird/backup.conf\";\n"));
    assert!(
        text.contains("if proto = \"sluice_backup\" && net.len = 32 then {\n        bgp_path.prepend(65001);\n        bgp_path.prepend(65001);\n        accept;\n    }\n    reject;"),
        "{text}"
    );
}

#[test]
fn bfd_is_written_only_when_asked() {
    let mut b = bgp();
    b.bfd_interval = Duration::from_millis(50);
    b.bfd_multiplier = 3;
    let text = config_text(&b, &paths());
    assert!(text.contains("protocol bfd sluice_bfd {"));
    assert!(text.contains("min rx interval 50 ms;\n        min tx interval 50 ms;\n        multiplier 3;"));
    assert_eq!(text.matches("bfd on;").count(), 2);
    b.bfd = false;
    let text = config_text(&b, &paths());
    assert!(!text.contains("bfd"), "{text}");
}

#[test]
fn keepalive_is_a_third_of_hold() {
    let mut b = bgp();
    b.hold = Duration::from_secs(90);
    assert!(config_text(&b, &paths()).contains("hold time 90;\n    keepalive time 30;\n"));
    b.hold = Duration::from_secs(4);
    assert!(config_text(&b, &paths()).contains("hold time 4;\n    keepalive time 1;\n"));
}

#[test]
fn routes_file_lists_blackholes() {
    let text = routes_text([Ipv4Addr::new(198, 18, 10, 10), Ipv4Addr::new(198, 18, 11, 1)]);
    assert!(text.ends_with("route 198.18.10.10/32 blackhole;\nroute 198.18.11.1/32 blackhole;\n"), "{text}");
    assert!(!routes_text([]).contains("route "));
}
