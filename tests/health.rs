//! Health checks and quorum through the real `sluice` binary, with real servers in namespaces
//! (scripts/testnet): the checks run in Sluice and reach the backends through its own kernel
//! exception path.
//! - UDP, per-datagram rr over 3 backends with a udp check: a stopped backend gets nothing
//!   after fall x interval + timeout and the client loses nothing after that window; started
//!   again it gets its exact share back within rise x interval.
//! - HTTP checks: a backend answering 500 is down and gets no connections; one that accepts
//!   but never answers does not slow the checks of the others. TCP checks: a closed listener
//!   goes down and comes back.
//! - Quorum: with min_active = 2, stopping two of three backends silences the VIP (no traffic,
//!   no ARP); starting one brings it back.

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::servers::{TcpBackend, UdpBackend};
use common::*;
use serde_json::Value;

const INTERVAL_MS: u64 = 200;
const TIMEOUT_MS: u64 = 100;
const RISE: u64 = 2;
const FALL: u64 = 2;
/// Checks run on schedule, plus the control loop's own period and the switch to a snapshot.
const SLACK_MS: u64 = 300;

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
    wait_states(&sluice, "dns", &all_up, Duration::from_secs(10));

    let socket = client(&net, Duration::from_millis(300));
    assert!(wait_until(Duration::from_secs(10), || lost(&socket, 3) == 0), "echo through the VIP");

    // Stop one backend: after the window it gets nothing and the client loses nothing.
    servers[0] = None;
    let stopped = Instant::now();
    let window = Duration::from_millis(FALL * INTERVAL_MS + TIMEOUT_MS + SLACK_MS);
    wait_states(&sluice, "dns", &[("198.18.1.2:53", "down")], window);
    assert!(stopped.elapsed() <= window, "down within fall x interval + timeout (+ slack): {:?}", stopped.elapsed());
    let before: Vec<u64> = servers.iter().flatten().map(|s| s.count()).collect();
    assert_eq!(lost(&socket, 300), 0, "no datagram lost after the window");
    let after: Vec<u64> = servers.iter().flatten().map(|s| s.count()).collect();
    assert_eq!(after[0] - before[0] + after[1] - before[1], 300, "the two live backends took all");
    assert!(sluice.log_text().contains("service=dns backend=198.18.1.2:53 up -> down"), "{}", sluice.log_text());

    // Start it again: within rise x interval it is up and gets its exact third back.
    servers[0] = Some(UdpBackend::start(&net.srv(), "198.18.1.2:53"));
    let started = Instant::now();
    let window = Duration::from_millis(RISE * INTERVAL_MS + TIMEOUT_MS + SLACK_MS);
    wait_states(&sluice, "dns", &[("198.18.1.2:53", "up")], window);
    assert!(started.elapsed() <= window, "up within rise x interval (+ slack): {:?}", started.elapsed());
    let before: Vec<u64> = servers.iter().flatten().map(|s| s.count()).collect();
    assert_eq!(lost(&socket, 300), 0);
    let share: Vec<u64> = servers.iter().flatten().map(|s| s.count()).zip(&before).map(|(a, b)| a - b).collect();
    assert_eq!(share, [100, 100, 100], "per-datagram rr over three again");
}

#[test]
fn http_and_tcp_checks_judge_backends_and_a_stuck_one_slows_nobody() {
    let net = TestNet::up("slh2", 4);
    let web = format!(
        "[[service]]\nname = \"web\"\nvip = \"198.18.0.10:80\"\nprotocol = \"tcp\"\nlocal_ips = [\"198.18.1.100\"]\n{}{}",
        health("http", "send = \"/health\"\nexpect = \"200\""),
        backends(80, &[2, 3, 4, 5])
    );
    let raw = format!(
        "[[service]]\nname = \"raw\"\nvip = \"198.18.0.10:9000\"\nprotocol = \"tcp\"\nlocal_ips = [\"198.18.1.101\"]\n{}{}",
        health("tcp", ""),
        backends(9000, &[2, 3])
    );
    let _ok2 = TcpBackend::start(&net.srv(), "198.18.1.2:80", 200);
    let _ok3 = TcpBackend::start(&net.srv(), "198.18.1.3:80", 200);
    let _bad = TcpBackend::start(&net.srv(), "198.18.1.4:80", 500);
    let _stuck = TcpBackend::start(&net.srv(), "198.18.1.5:80", 0);
    let _raw2 = TcpBackend::start(&net.srv(), "198.18.1.2:9000", 0);
    let raw3 = TcpBackend::start(&net.srv(), "198.18.1.3:9000", 0);
    let sluice = Sluice::start(&net, &config(&format!("{web}\n{raw}")));

    wait_states(
        &sluice,
        "web",
        &[("198.18.1.2:80", "up"), ("198.18.1.3:80", "up"), ("198.18.1.4:80", "down"), ("198.18.1.5:80", "down")],
        Duration::from_secs(10),
    );
    for _ in 0..12 {
        let out = run_in(&net.cli(), &["curl", "-sS", "--max-time", "3", "http://198.18.0.10/"]);
        let body = stdout(&out);
        assert!(
            body == "backend 198.18.1.2:80\n" || body == "backend 198.18.1.3:80\n",
            "only healthy backends answer: {body:?}"
        );
    }
    let scrape = || stdout(&run_in(&net.lb(), &["curl", "-sS", "--max-time", "5", "http://127.0.0.1:9273/metrics"]));
    let checks_of = |text: &str, backend: &str, result: &str| -> u64 {
        text.lines()
            .filter(|l| {
                l.starts_with("sluice_health_checks_total")
                    && l.contains(&format!("backend=\"{backend}\""))
                    && l.contains(&format!("result=\"{result}\""))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    };
    let text = scrape();
    let up_line = text.lines().find(|l| l.starts_with("sluice_backend_up{") && l.contains("backend=\"198.18.1.4:80\""));
    assert!(up_line.is_some_and(|l| l.ends_with(" 0")), "{text}");
    assert!(checks_of(&text, "198.18.1.4:80", "fail") > 0);

    // The stuck backend times out on every check; the good one is checked on schedule meanwhile.
    let start = (Instant::now(), checks_of(&text, "198.18.1.2:80", "ok"));
    std::thread::sleep(Duration::from_secs(2));
    let (elapsed, ok) = (start.0.elapsed(), checks_of(&scrape(), "198.18.1.2:80", "ok") - start.1);
    let expected = elapsed.as_millis() as u64 / INTERVAL_MS;
    assert!(ok + 2 >= expected, "{ok} checks of a good backend in {elapsed:?} (expected about {expected})");

    // TCP check: a closed listener goes down, and comes back up when it listens again.
    wait_states(&sluice, "raw", &[("198.18.1.2:9000", "up"), ("198.18.1.3:9000", "up")], Duration::from_secs(5));
    drop(raw3);
    wait_states(
        &sluice,
        "raw",
        &[("198.18.1.3:9000", "down")],
        Duration::from_millis(FALL * INTERVAL_MS + TIMEOUT_MS + SLACK_MS),
    );
    let _raw3 = TcpBackend::start(&net.srv(), "198.18.1.3:9000", 0);
    wait_states(
        &sluice,
        "raw",
        &[("198.18.1.3:9000", "up")],
        Duration::from_millis(RISE * INTERVAL_MS + TIMEOUT_MS + SLACK_MS),
    );
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
    wait_states(
        &sluice,
        "dns",
        &[("198.18.1.2:53", "up"), ("198.18.1.3:53", "up"), ("198.18.1.4:53", "up")],
        Duration::from_secs(10),
    );
    let socket = client(&net, Duration::from_millis(300));
    assert!(wait_until(Duration::from_secs(10), || lost(&socket, 3) == 0));

    servers[0] = None;
    servers[1] = None;
    wait_states(&sluice, "dns", &[("198.18.1.2:53", "down"), ("198.18.1.3:53", "down")], Duration::from_secs(5));
    assert_eq!(lost(&socket, 5), 5, "the VIP answers nothing without its quorum");
    let neigh_ok = || {
        let _ = run_in(&net.cli(), &["ip", "neigh", "flush", "dev", "cli0"]);
        let _ = run_in(&net.cli(), &["ping", "-c1", "-W1", "198.18.0.10"]);
        stdout(&run_in(&net.cli(), &["ip", "neigh", "show", "198.18.0.10"])).contains("lladdr")
    };
    assert!(!neigh_ok(), "no ARP answer for a silent VIP");
    assert!(sluice.ctl_json(&["status"])["sessions"].is_u64());

    servers[1] = Some(UdpBackend::start(&net.srv(), "198.18.1.3:53"));
    wait_states(&sluice, "dns", &[("198.18.1.3:53", "up")], Duration::from_secs(5));
    assert!(wait_until(Duration::from_secs(5), neigh_ok), "ARP answered again");
    // A new flow: the old one stays with its (inhibited, dead) backend, as `inhibit` means.
    let fresh = client(&net, Duration::from_millis(300));
    assert!(wait_until(Duration::from_secs(5), || lost(&fresh, 3) == 0), "traffic answered again");
}
