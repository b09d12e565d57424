//! Health checks and quorum through the real `sluice` binary, with real servers in namespaces
//! (scripts/testnet): the checks run in Sluice and reach the backends through its own kernel
//! exception path.
//! - UDP, per-datagram rr over 3 backends with a udp check: a stopped backend goes down after
//!   `fall` failed checks, gets nothing after, and the client loses nothing; started again it
//!   is up after `rise` good checks and gets its exact share back.
//! - HTTP checks: a backend answering 500 is down and gets no connections; one that accepts
//!   but never answers does not hold up the checks of the others (they go on while its check
//!   hangs). TCP checks: a closed listener goes down and comes back.
//! - Quorum: with min_active = 2, stopping two of three backends silences the VIP (no traffic,
//!   counted as vip_down; no ARP) while the sessions of the inhibited backends live on;
//!   starting one brings it back.
//!
//! Conditions are polled with generous deadlines: how fast is the benchmarks' business.

mod common;

use std::net::UdpSocket;
use std::time::Duration;

use common::servers::{TcpBackend, UdpBackend};
use common::*;
use serde_json::Value;

const INTERVAL_MS: u64 = 200;
const TIMEOUT_MS: u64 = 100;
const RISE: u64 = 2;
const FALL: u64 = 2;
/// How long a state change may take on a busy machine: far more than `rise` or `fall` checks.
const SETTLE: Duration = Duration::from_secs(15);

fn health(check: &str, extra: &str) -> String {
    format!(
        "[service.health]\ncheck = \"{check}\"\ninterval = \"{INTERVAL_MS}ms\"\ntimeout = \"{TIMEOUT_MS}ms\"\n\
         rise = {RISE}\nfall = {FALL}\n{extra}\n"
    )
}

fn backends(port: u16, hosts: &[u8]) -> String {
    hosts.iter().map(|h| format!("[[service.backend]]\naddress = \"198.18.1.{h}:{port}\"\n")).collect()
}

/// Backend address -> state, from `sluicectl --json services`.
fn states(sluice: &Sluice, service: &str) -> Vec<(String, String)> {
    let services = sluice.ctl_json(&["services"]);
    let s = services.as_array().unwrap().iter().find(|s| s["name"] == service).cloned().unwrap_or(Value::Null);
    s["backends"]
        .as_array()
        .map(|b| {
            b.iter()
                .map(|b| (b["address"].as_str().unwrap().to_owned(), b["state"].as_str().unwrap().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

fn wait_states(sluice: &Sluice, service: &str, want: &[(&str, &str)], within: Duration) {
    let want: Vec<(String, String)> = want.iter().map(|(a, s)| (a.to_string(), s.to_string())).collect();
    let ok = wait_until(within, || {
        let now = states(sluice, service);
        want.iter().all(|w| now.contains(w))
    });
    assert!(ok, "{service}: wanted {want:?}, have {:?}\n{}", states(sluice, service), sluice.log_text());
}

/// Sends `n` datagrams one after the other; returns how many got no echo from the VIP.
fn lost(socket: &UdpSocket, n: usize) -> usize {
    (0..n)
        .filter(|i| {
            let payload = format!("datagram {i}");
            socket.send_to(payload.as_bytes(), "198.18.0.10:53").unwrap();
            let mut buf = [0u8; 256];
            !matches!(socket.recv_from(&mut buf), Ok((n, from)) if from.to_string() == "198.18.0.10:53" && &buf[..n] == payload.as_bytes())
        })
        .count()
}

/// Health checks of `backend` with `result` (`ok`, `fail`) so far, from the metrics.
fn checks(net: &TestNet, backend: &str, result: &str) -> u64 {
    metric(net, "sluice_health_checks_total", &[&format!("backend=\"{backend}\""), &format!("result=\"{result}\"")])
}

/// The sum of `family`'s series whose labels contain every one of `labels`.
fn metric(net: &TestNet, family: &str, labels: &[&str]) -> u64 {
    let text = stdout(&run_in(&net.lb(), &["curl", "-sS", "--max-time", "5", "http://127.0.0.1:9273/metrics"]));
    text.lines()
        .filter(|l| l.starts_with(&format!("{family}{{")) && labels.iter().all(|want| l.contains(want)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

fn client(net: &TestNet, timeout: Duration) -> UdpSocket {
    in_netns(&net.cli(), move || {
        let s = UdpSocket::bind("198.18.0.2:0").unwrap();
        s.set_read_timeout(Some(timeout)).unwrap();
        s
    })
}

#[test]
fn a_dead_udp_backend_leaves_the_rotation_and_comes_back() {
    let net = TestNet::up("slh1", 3);
    let service = format!(
        "[[service]]\nname = \"dns\"\nvip = \"198.18.0.10:53\"\nprotocol = \"udp\"\nscheduler = \"rr\"\nper_packet = true\n\
         local_ips = [\"198.18.1.100\"]\n{}{}",
        health("udp", "send = \"ping\"\nexpect = \"pong\""),
        backends(53, &[2, 3, 4])
    );
    let mut servers: Vec<Option<UdpBackend>> =
        [2, 3, 4].iter().map(|h| Some(UdpBackend::start(&net.srv(), &format!("198.18.1.{h}:53")))).collect();
    let sluice = Sluice::start(&net, &config(&service));
    let all_up = [("198.18.1.2:53", "up"), ("198.18.1.3:53", "up"), ("198.18.1.4:53", "up")];
    wait_states(&sluice, "dns", &all_up, SETTLE);

    let socket = client(&net, Duration::from_millis(300));
    assert!(wait_until(SETTLE, || lost(&socket, 3) == 0), "echo through the VIP");

    // Stop one backend: down after `fall` failed checks; then it gets nothing and the client
    // loses nothing.
    let failed = checks(&net, "198.18.1.2:53", "fail");
    servers[0] = None;
    wait_states(&sluice, "dns", &[("198.18.1.2:53", "down")], SETTLE);
    assert!(checks(&net, "198.18.1.2:53", "fail") - failed >= FALL, "down after fall failed checks, not before");
    let before: Vec<u64> = servers.iter().flatten().map(|s| s.count()).collect();
    assert_eq!(lost(&socket, 300), 0, "no datagram lost after the window");
    let after: Vec<u64> = servers.iter().flatten().map(|s| s.count()).collect();
    assert_eq!(after[0] - before[0] + after[1] - before[1], 300, "the two live backends took all");
    assert!(sluice.log_text().contains("service=dns backend=198.18.1.2:53 up -> down"), "{}", sluice.log_text());

    // Start it again: up after `rise` good checks, and it gets its exact third back.
    let good = checks(&net, "198.18.1.2:53", "ok");
    servers[0] = Some(UdpBackend::start(&net.srv(), "198.18.1.2:53"));
    wait_states(&sluice, "dns", &[("198.18.1.2:53", "up")], SETTLE);
    assert!(checks(&net, "198.18.1.2:53", "ok") - good >= RISE, "up after rise good checks, not before");
    let before: Vec<u64> = servers.iter().flatten().map(|s| s.count()).collect();
    assert_eq!(lost(&socket, 300), 0);
    let share: Vec<u64> = servers.iter().flatten().map(|s| s.count()).zip(&before).map(|(a, b)| a - b).collect();
    assert_eq!(share, [100, 100, 100], "per-datagram rr over three again");
}

#[test]
fn http_and_tcp_checks_judge_backends_and_a_stuck_one_holds_up_nobody() {
    let net = TestNet::up("slh2", 4);
    let web = format!(
        "[[service]]\nname = \"web\"\nvip = \"198.18.0.10:80\"\nprotocol = \"tcp\"\nlocal_ips = [\"198.18.1.100\"]\n{}{}",
        health("http", "send = \"/health\"\nexpect = \"200\""),
        backends(80, &[2, 3, 4])
    );
    // A backend that accepts and never answers, checked every 2 s with a 2 s timeout: once it
    // is reached, its check hangs for a whole interval.
    let slow =
        "[[service]]\nname = \"slow\"\nvip = \"198.18.0.10:81\"\nprotocol = \"tcp\"\nlocal_ips = [\"198.18.1.102\"]\n\
                [service.health]\ncheck = \"http\"\ninterval = \"2s\"\ntimeout = \"2s\"\n\
                [[service.backend]]\naddress = \"198.18.1.5:80\"\n";
    let raw = format!(
        "[[service]]\nname = \"raw\"\nvip = \"198.18.0.10:9000\"\nprotocol = \"tcp\"\nlocal_ips = [\"198.18.1.101\"]\n{}{}",
        health("tcp", ""),
        backends(9000, &[2, 3])
    );
    let _ok2 = TcpBackend::start(&net.srv(), "198.18.1.2:80", 200);
    let _ok3 = TcpBackend::start(&net.srv(), "198.18.1.3:80", 200);
    let _bad = TcpBackend::start(&net.srv(), "198.18.1.4:80", 500);
    let stuck = TcpBackend::start(&net.srv(), "198.18.1.5:80", 0);
    let _raw2 = TcpBackend::start(&net.srv(), "198.18.1.2:9000", 0);
    let raw3 = TcpBackend::start(&net.srv(), "198.18.1.3:9000", 0);
    let sluice = Sluice::start(&net, &config(&format!("{web}\n{slow}\n{raw}")));

    wait_states(&sluice, "web", &[("198.18.1.2:80", "up"), ("198.18.1.3:80", "up"), ("198.18.1.4:80", "down")], SETTLE);
    for _ in 0..12 {
        let out = run_in(&net.cli(), &["curl", "-sS", "--max-time", "3", "http://198.18.0.10/"]);
        let body = stdout(&out);
        assert!(
            body == "backend 198.18.1.2:80\n" || body == "backend 198.18.1.3:80\n",
            "only healthy backends answer: {body:?}"
        );
    }
    assert_eq!(metric(&net, "sluice_backend_up", &["backend=\"198.18.1.4:80\""]), 0);
    assert!(checks(&net, "198.18.1.4:80", "fail") > 0);

    // While one check of the stuck backend hangs (2 s), the good backend passes 5 checks (one
    // each 200 ms). Were checks taken one after the other, each would wait for a hanging check
    // and the stuck server would be reached about as often as the good one.
    let reached = stuck.accepted.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        wait_until(SETTLE, || stuck.accepted.load(std::sync::atomic::Ordering::SeqCst) > reached),
        "the stuck backend was never checked"
    );
    let hanging = stuck.accepted.load(std::sync::atomic::Ordering::SeqCst);
    let good = checks(&net, "198.18.1.2:80", "ok");
    assert!(
        wait_until(SETTLE, || checks(&net, "198.18.1.2:80", "ok") >= good + 5),
        "the good backend's checks stopped"
    );
    let during = stuck.accepted.load(std::sync::atomic::Ordering::SeqCst) - hanging;
    assert!(during <= 1, "{during} checks of the stuck backend began during 5 of the good one");

    // TCP check: a closed listener goes down, and comes back up when it listens again.
    wait_states(&sluice, "raw", &[("198.18.1.2:9000", "up"), ("198.18.1.3:9000", "up")], SETTLE);
    drop(raw3);
    wait_states(&sluice, "raw", &[("198.18.1.3:9000", "down")], SETTLE);
    let _raw3 = TcpBackend::start(&net.srv(), "198.18.1.3:9000", 0);
    wait_states(&sluice, "raw", &[("198.18.1.3:9000", "up")], SETTLE);
}

#[test]
fn below_min_active_the_vip_goes_silent_and_comes_back() {
    let net = TestNet::up("slh3", 3);
    let service = format!(
        "[[service]]\nname = \"dns\"\nvip = \"198.18.0.10:53\"\nprotocol = \"udp\"\nlocal_ips = [\"198.18.1.100\"]\nmin_active = 2\n{}{}",
        health("udp", "send = \"ping\"\nexpect = \"pong\""),
        backends(53, &[2, 3, 4])
    );
    let mut servers: Vec<Option<UdpBackend>> =
        [2, 3, 4].iter().map(|h| Some(UdpBackend::start(&net.srv(), &format!("198.18.1.{h}:53")))).collect();
    let sluice = Sluice::start(&net, &config(&service));
    wait_states(&sluice, "dns", &[("198.18.1.2:53", "up"), ("198.18.1.3:53", "up"), ("198.18.1.4:53", "up")], SETTLE);
    let socket = client(&net, Duration::from_millis(300));
    assert!(wait_until(SETTLE, || lost(&socket, 3) == 0));

    let flow = format!("198.18.0.2:{}", socket.local_addr().unwrap().port());
    servers[0] = None;
    servers[1] = None;
    wait_states(&sluice, "dns", &[("198.18.1.2:53", "down"), ("198.18.1.3:53", "down")], SETTLE);
    let vip_down = metric(&net, "sluice_packets_dropped_total", &["reason=\"vip_down\""]);
    assert_eq!(lost(&socket, 5), 5, "the VIP answers nothing without its quorum");
    assert!(
        wait_until(SETTLE, || metric(&net, "sluice_packets_dropped_total", &["reason=\"vip_down\""]) >= vip_down + 5),
        "the flow's datagrams are counted as vip_down"
    );
    // `inhibit` (the default): the flow's session lives on, although its backend is down.
    let listed = || {
        let rows = sluice.ctl_json(&["sessions", "dns"]);
        rows.as_array().is_some_and(|r| r.iter().any(|row| row["client"] == flow.as_str()))
    };
    assert!(wait_until(SETTLE, listed), "the session of {flow} ended: {}", sluice.ctl_json(&["sessions"]));
    let neigh_ok = || {
        let _ = run_in(&net.cli(), &["ip", "neigh", "flush", "dev", "cli0"]);
        let _ = run_in(&net.cli(), &["ping", "-c1", "-W1", "198.18.0.10"]);
        stdout(&run_in(&net.cli(), &["ip", "neigh", "show", "198.18.0.10"])).contains("lladdr")
    };
    assert!(!neigh_ok(), "no ARP answer for a silent VIP");

    // Quorum back: the VIP is announced by gratuitous ARP (the client, accepting gratuitous ARP,
    // learns it without asking), and answered again.
    let _ = run_in(&net.cli(), &["sysctl", "-qw", "net.ipv4.conf.cli0.arp_accept=1"]);
    let _ = run_in(&net.cli(), &["ip", "neigh", "flush", "dev", "cli0"]);
    servers[1] = Some(UdpBackend::start(&net.srv(), "198.18.1.3:53"));
    wait_states(&sluice, "dns", &[("198.18.1.3:53", "up")], SETTLE);
    let learned = || stdout(&run_in(&net.cli(), &["ip", "neigh", "show", "198.18.0.10"])).contains("lladdr");
    assert!(wait_until(SETTLE, learned), "no gratuitous ARP for the VIP when it came back");
    assert!(wait_until(SETTLE, neigh_ok), "ARP answered again");
    // A new flow: the old one stays with its (inhibited, dead) backend, as `inhibit` means.
    let fresh = client(&net, Duration::from_millis(300));
    assert!(wait_until(SETTLE, || lost(&fresh, 3) == 0), "traffic answered again");
}
