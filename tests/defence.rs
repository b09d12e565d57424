//! Defence at the edge, end to end through the real `sluice` binary (scripts/testnet): a
//! service's `deny` and `allow` prefixes and its session and rate limits refuse new flows from
//! kernel clients, counted by reason; each changes by reload, and flows already open go on.

mod common;

use std::net::UdpSocket;
use std::time::Duration;

use common::servers::udp_echo;
use common::*;

fn service(extra: &str) -> String {
    format!(
        r#"
[[service]]
name = "echo"
vip = "198.18.0.10:7"
protocol = "udp"
local_ips = ["198.18.1.100"]
{extra}
[[service.backend]]
address = "198.18.1.2:7"
"#
    )
}

/// Opens `count` client sockets, each sending one datagram (three tries, 300 ms apart);
/// returns the sockets, and which of them got their echo.
fn new_flows(net: &TestNet, count: usize) -> (Vec<UdpSocket>, Vec<bool>) {
    in_netns(&net.cli(), move || {
        let sockets: Vec<UdpSocket> = (0..count).map(|_| UdpSocket::bind("198.18.0.2:0").unwrap()).collect();
        let answered = sockets.iter().map(|s| echoed(s, 3)).collect();
        (sockets, answered)
    })
}

fn echoed(s: &UdpSocket, tries: usize) -> bool {
    s.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    (0..tries).any(|_| {
        s.send_to(b"hello", "198.18.0.10:7").unwrap();
        let mut buf = [0u8; 64];
        matches!(s.recv_from(&mut buf), Ok((5, _)))
    })
}

/// Reloads with `extra` (which must refuse 198.18.0.3) and waits until the workers have it: a
/// probe from 198.18.0.3 is refused as `denied` (a reload is logged before the workers take
/// the new snapshot).
fn reload_in_force(net: &TestNet, sluice: &Sluice, extra: &str) {
    let out = sluice.reload(&config(&service(extra)));
    assert!(!out.contains("refused"), "reload: {out}");
    let before = dropped(net, "denied");
    let probe = in_netns(&net.cli(), || UdpSocket::bind("198.18.0.3:0").unwrap());
    let in_force = wait_until(Duration::from_secs(5), || {
        in_netns(&net.cli(), {
            let probe = probe.try_clone().unwrap();
            move || probe.send_to(b"probe", "198.18.0.10:7").unwrap()
        });
        std::thread::sleep(Duration::from_millis(50));
        dropped(net, "denied") > before
    });
    assert!(in_force, "the reloaded config never refused the probe\n{}", sluice.log_text());
}

fn dropped(net: &TestNet, reason: &str) -> f64 {
    metric_sum(&scrape_metrics(&net.lb()), "sluice_packets_dropped_total", &[&format!("reason=\"{reason}\"")])
}

#[test]
fn access_lists_and_limits_refuse_new_flows_and_change_by_reload() {
    let net = TestNet::up("sdf", 1);
    let _servers = udp_echo(&net.srv(), &["198.18.1.2:7"]);
    // The client 198.18.0.2 is in the denied prefix.
    let sluice = Sluice::start(&net, &config(&service(r#"deny = ["198.18.0.0/30"]"#)));
    let (_, answered) = new_flows(&net, 1);
    assert_eq!(answered, [false], "a denied client was answered");
    assert!(dropped(&net, "denied") >= 1.0);

    // Allowed by name; at most 5 sessions: 5 of 8 new flows open.
    assert!(run_in(&net.cli(), &["ip", "addr", "add", "198.18.0.3/24", "dev", "cli0"]).status.success());
    reload_in_force(&net, &sluice, "allow = [\"198.18.0.2/32\"]\nmax_sessions = 5");
    let (sockets, answered) = new_flows(&net, 8);
    assert_eq!(answered.iter().filter(|&&a| a).count(), 5, "{answered:?}\n{}", sluice.log_text());
    assert!(dropped(&net, "limit_sessions") >= 3.0);

    // No session limit, 3 new flows a second from one client: of 12 new flows sent within a
    // fraction of a second (one or two windows), 3 to 6 open; those open before go on.
    reload_in_force(&net, &sluice, "per_client_new_sessions_per_second = 3\ndeny = [\"198.18.0.3/32\"]");
    let open: Vec<UdpSocket> = sockets.into_iter().zip(&answered).filter(|(_, &a)| a).map(|(s, _)| s).collect();
    let (_, answered) = in_netns(&net.cli(), || {
        // All sent first (a millisecond or so), then the answers collected.
        let sockets: Vec<UdpSocket> = (0..12).map(|_| UdpSocket::bind("198.18.0.2:0").unwrap()).collect();
        for s in &sockets {
            s.send_to(b"hello", "198.18.0.10:7").unwrap();
        }
        let answered: Vec<bool> = sockets
            .iter()
            .map(|s| {
                s.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
                let mut buf = [0u8; 64];
                matches!(s.recv_from(&mut buf), Ok((5, _)))
            })
            .collect();
        (sockets, answered)
    });
    let opened = answered.iter().filter(|&&a| a).count();
    assert!(
        (3..=6).contains(&opened),
        "{opened} of 12 opened at 3 a second: {}",
        scrape_metrics(&net.lb()).lines().filter(|l| l.contains("dropped_total")).collect::<Vec<_>>().join("\n")
    );
    assert!(dropped(&net, "limit_rate") >= 6.0);
    let still = in_netns(&net.cli(), move || open.iter().filter(|s| echoed(s, 3)).count());
    assert_eq!(still, 5, "the sessions open before the reload go on under the rate limit");
}
