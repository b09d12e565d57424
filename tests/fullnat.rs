//! FULLNAT end to end through the real `sluice` binary, with real kernel clients and servers in
//! namespaces (scripts/testnet, three backends 198.18.1.2-4):
//! - UDP echo through the VIP: every reply comes from VIP:port, to the client's own port, with
//!   its payload intact; rr spreads the client sockets (sessions) evenly over the backends;
//! - HTTP through the VIP with curl: every response is a right body from one backend, and rr
//!   spreads the connections exactly evenly;
//! - a 100 MB download through the VIP arrives intact (sha256);
//! - ping of the VIP is answered by Sluice;
//! - datagrams to a port of the VIP that no service has are dropped and counted (no_service);
//! - the same UDP and HTTP service over `af_xdp:IFNAME` ports instead of af_packet vdevs.

mod common;

use std::collections::HashMap;
use std::net::UdpSocket;
use std::time::Duration;

use common::servers::{http, udp_echo};
use common::*;

const SERVICES: &str = r#"
[[service]]
name = "echo"
vip = "198.18.0.10:7"
protocol = "udp"
scheduler = "rr"
local_ips = ["198.18.1.100"]
[[service.backend]]
address = "198.18.1.2:7"
[[service.backend]]
address = "198.18.1.3:7"
[[service.backend]]
address = "198.18.1.4:7"

[[service]]
name = "web"
vip = "198.18.0.10:80"
protocol = "tcp"
scheduler = "rr"
local_ips = ["198.18.1.101"]
[[service.backend]]
address = "198.18.1.2:80"
[[service.backend]]
address = "198.18.1.3:80"
[[service.backend]]
address = "198.18.1.4:80"
"#;

const BACKENDS_UDP: [&str; 3] = ["198.18.1.2:7", "198.18.1.3:7", "198.18.1.4:7"];
const BACKENDS_HTTP: [&str; 3] = ["198.18.1.2:80", "198.18.1.3:80", "198.18.1.4:80"];

#[test]
fn udp_echo_through_the_vip() {
    let net = TestNet::up("slu", 3);
    let servers = udp_echo(&net.srv(), &BACKENDS_UDP);
    let sluice = Sluice::start(&net, &config(SERVICES));

    // The first datagram also waits for ARP on both sides; retry it until the path is up.
    // Every socket stays open to the end, so that no client port is reused by a later socket
    // (which would find the earlier one's session instead of opening its own).
    let (warm_socket, first) = in_netns(&net.cli(), || {
        let s = UdpSocket::bind("198.18.0.2:0").unwrap();
        s.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
        let ok = (0..30).any(|_| {
            let mut buf = [0u8; 64];
            s.send_to(b"warm-up", "198.18.0.10:7").unwrap();
            matches!(s.recv_from(&mut buf), Ok((7, from)) if from.to_string() == "198.18.0.10:7")
        });
        (s, ok)
    });
    assert!(first, "no echo through the VIP:\n{}", sluice.log_text());
    let before = servers.counts();

    // 30 client sockets (30 sessions), 20 datagrams each, every reply checked.
    let bad = echo_from_sockets(&net, 30, 20);
    assert!(bad.is_empty(), "{} bad or missing replies, first: {:?}", bad.len(), bad.first());
    let spread: Vec<u64> = servers.counts().iter().zip(&before).map(|(a, b)| a - b).collect();
    assert_eq!(spread, [200, 200, 200], "rr over 30 sessions of 20 datagrams each");
    drop(warm_socket);
}

/// 30 requests with `curl`: every body a right one, rr exactly even over the three backends.
fn thirty_requests_spread_evenly(curl: &dyn Fn(&str) -> std::process::Output) {
    let mut bodies: HashMap<String, u32> = HashMap::new();
    for _ in 0..30 {
        let out = curl("/");
        assert!(out.status.success(), "curl failed: {}", String::from_utf8_lossy(&out.stderr));
        *bodies.entry(stdout(&out)).or_default() += 1;
    }
    let expected: HashMap<String, u32> = BACKENDS_HTTP.iter().map(|b| (format!("backend {b}\n"), 10)).collect();
    assert_eq!(bodies, expected, "every body right, rr exactly even");
}

/// `sockets` client sockets (a session each) send `per_socket` datagrams each to the echo VIP,
/// every reply checked (from VIP:7, to the sender, payload intact); what went wrong, if anything.
/// The sockets stay open to the end, so that no client port is reused by a later one.
fn echo_from_sockets(net: &TestNet, sockets: usize, per_socket: usize) -> Vec<String> {
    in_netns(&net.cli(), move || {
        let mut bad = Vec::new();
        let open: Vec<UdpSocket> = (0..sockets).map(|_| UdpSocket::bind("198.18.0.2:0").unwrap()).collect();
        for (c, s) in open.iter().enumerate() {
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            for i in 0..per_socket {
                let payload = format!("client {c} datagram {i}");
                s.send_to(payload.as_bytes(), "198.18.0.10:7").unwrap();
                let mut buf = [0u8; 256];
                match s.recv_from(&mut buf) {
                    Ok((n, from)) if from.to_string() == "198.18.0.10:7" && &buf[..n] == payload.as_bytes() => {}
                    other => bad.push(format!("{payload}: {other:?}")),
                }
            }
        }
        bad
    })
}

#[test]
fn http_through_the_vip_spreads_evenly_and_carries_100_mb_intact() {
    let net = TestNet::up("slh", 3);
    let big = std::env::temp_dir().join("sluice-test-big.bin");
    let out = run("dd", &["if=/dev/urandom", &format!("of={}", big.display()), "bs=1M", "count=100", "status=none"]);
    assert!(out.status.success(), "make the 100 MB file");
    let servers = http(&net.srv(), &BACKENDS_HTTP, Some(big.clone()));
    let sluice = Sluice::start(&net, &config(SERVICES));

    let curl =
        |path: &str| run_in(&net.cli(), &["curl", "-sS", "--max-time", "10", &format!("http://198.18.0.10{path}")]);
    assert!(
        wait_until(Duration::from_secs(15), || curl("/").status.success()),
        "no HTTP through the VIP:\n{}",
        sluice.log_text()
    );
    let before = servers.counts();

    thirty_requests_spread_evenly(&curl);
    let spread: Vec<u64> = servers.counts().iter().zip(&before).map(|(a, b)| a - b).collect();
    assert_eq!(spread, [10, 10, 10]);

    let download = std::env::temp_dir().join("sluice-test-download.bin");
    let out = run_in(
        &net.cli(),
        &["curl", "-sS", "--max-time", "300", "-o", download.to_str().unwrap(), "http://198.18.0.10/big"],
    );
    assert!(out.status.success(), "download failed: {}\n{}", String::from_utf8_lossy(&out.stderr), sluice.log_text());
    let sha = |p: &std::path::Path| {
        stdout(&run("sha256sum", &[p.to_str().unwrap()])).split_whitespace().next().map(str::to_owned)
    };
    assert_eq!(sha(&download), sha(&big), "100 MB through the VIP arrives intact");
    let _ = std::fs::remove_file(&download);
    let _ = std::fs::remove_file(&big);
}

#[test]
fn vip_answers_ping_and_drops_unknown_ports_counted() {
    let net = TestNet::up("slp", 3);
    let mut sluice = Sluice::start(&net, &config(SERVICES));

    let ping = || run_in(&net.cli(), &["ping", "-c1", "-W1", "198.18.0.10"]).status.success();
    assert!(wait_until(Duration::from_secs(15), ping), "no ping reply from the VIP:\n{}", sluice.log_text());
    let out = run_in(&net.cli(), &["ping", "-c5", "-i0.2", "-W2", "198.18.0.10"]);
    assert!(stdout(&out).contains("5 received"), "{}", stdout(&out));

    let answered = in_netns(&net.cli(), || {
        let s = UdpSocket::bind("198.18.0.2:0").unwrap();
        s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        (0..5)
            .filter(|_| {
                s.send_to(b"anyone?", "198.18.0.10:9999").unwrap();
                s.recv_from(&mut [0u8; 64]).is_ok()
            })
            .count()
    });
    assert_eq!(answered, 0, "a port without a service must not answer");
    assert_eq!(sluice.stop(Duration::from_secs(15)), Some(0));
    assert_eq!(logged_drops(&sluice.log_text(), "no_service"), Some(5), "{}", sluice.log_text());
}

/// The testnet config with both links on `af_xdp:lb0` / `af_xdp:lb1` and no vdev in `[dpdk]`:
/// Sluice makes the AF_XDP vdevs itself.
fn af_xdp_config() -> String {
    let config = config(SERVICES)
        .replace(
            r#"args = ["--no-pci", "--vdev=net_af_packet0,iface=lb0", "--vdev=net_af_packet1,iface=lb1"]"#,
            r#"args = ["--no-pci"]"#,
        )
        .replace(r#"device = "net_af_packet0""#, r#"device = "af_xdp:lb0""#)
        .replace(r#"device = "net_af_packet1""#, r#"device = "af_xdp:lb1""#);
    assert!(config.contains("af_xdp:lb1") && !config.contains("net_af_packet"), "testnet config changed: {config}");
    config
}

#[test]
fn af_xdp_ports_carry_udp_and_tcp_through_the_vip() {
    let net = TestNet::up("slx", 3);
    let servers = udp_echo(&net.srv(), &BACKENDS_UDP);
    let _web = http(&net.srv(), &BACKENDS_HTTP, None);
    let sluice = Sluice::start(&net, &af_xdp_config());
    let log = sluice.log_text();
    assert!(log.contains("port af_xdp:lb0 (net_af_xdp"), "the port is Sluice's own af_xdp vdev:\n{log}");

    let curl =
        |path: &str| run_in(&net.cli(), &["curl", "-sS", "--max-time", "5", &format!("http://198.18.0.10{path}")]);
    assert!(
        wait_until(Duration::from_secs(20), || curl("/").status.success()),
        "no HTTP through the VIP over af_xdp:\n{}",
        sluice.log_text()
    );
    thirty_requests_spread_evenly(&curl);

    let before = servers.counts();
    let bad = echo_from_sockets(&net, 30, 10);
    assert!(bad.is_empty(), "{} bad or missing replies over af_xdp, first: {:?}", bad.len(), bad.first());
    let spread: Vec<u64> = servers.counts().iter().zip(&before).map(|(a, b)| a - b).collect();
    assert_eq!(spread, [100, 100, 100], "rr over 30 sessions of 10 datagrams each");

    // The worker's loop counter moves: what an operator watches for a stalled worker.
    let loops = || metric_sum(&scrape_metrics(&net.lb()), "sluice_worker_loops_total", &["worker=\"0\""]);
    let first = loops();
    assert!(first > 0.0, "sluice_worker_loops_total is exported");
    assert!(wait_until(Duration::from_secs(5), || loops() > first), "the loop counter rises");
}
