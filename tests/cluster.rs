//! A cluster behind ECMP (`scripts/clusternet`): two one-armed Sluice nodes announce their VIP
//! by BGP through BIRD, with BFD, to a router that installs one route with both as next hops
//! and spreads flows by their ports. What each node announces follows its own health checks,
//! `sluicectl drain-node`, SIGTERM (withdraw, drain, stop) and its death (SIGKILL of Sluice, or
//! of everything in its namespace: BFD takes the routes away), and BIRD killed under a running
//! Sluice is started again. Clients' connections all get answers throughout.

mod common;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use common::cluster::{
    cluster_section, exchange, node_address, node_config, packets_to_backends, Client, ClusterNet, FrozenWorker, VIP,
};
use common::{in_netns, run_in, send_signal, servers, wait_until, Sluice};

const BACKENDS: u32 = 3;

fn backend_addrs() -> Vec<String> {
    (0..BACKENDS).map(|i| format!("198.18.1.{}:80", 2 + i)).collect()
}

fn both() -> Vec<Ipv4Addr> {
    vec![node_address(1), node_address(2)]
}

/// Waits until the router's route to the VIP has exactly `hops` as next hops; how long it took.
fn await_hops(net: &ClusterNet, hops: &[Ipv4Addr], within: Duration) -> Duration {
    let started = Instant::now();
    let ok = wait_until(within, || net.next_hops(VIP) == hops);
    assert!(ok, "the router's next hops for {VIP} stayed {:?}, expected {hops:?}", net.next_hops(VIP));
    started.elapsed()
}

/// Polls every 10 ms until node `k` is no next hop of any route; how long that took.
fn time_until_gone(net: &ClusterNet, k: u32, within: Duration) -> Duration {
    let started = Instant::now();
    let node = node_address(k).to_string();
    while Instant::now() - started < within {
        let table = common::stdout(&run_in(&net.router(), &["ip", "route", "show"]));
        if !table.contains(&format!("via {node} ")) {
            return started.elapsed();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("node {k}'s routes were still at the router after {within:?}");
}

/// `n` new connections in a row from the clients' namespace; the failures.
fn connections(net: &ClusterNet, n: usize) -> Vec<String> {
    in_netns(&net.cli(), move || {
        (0..n).filter_map(|i| exchange(Duration::from_secs(3)).err().map(|e| format!("{i}: {e}"))).collect()
    })
}

fn route_state(node: &Sluice, prefix: &str) -> (bool, Option<String>) {
    let status = node.ctl_json(&["status"]);
    let routes = status["bgp"]["routes"].as_array().cloned().unwrap_or_default();
    let route = routes.iter().find(|r| r["prefix"] == prefix).unwrap_or_else(|| panic!("no route {prefix}: {status}"));
    (route["announced"].as_bool().unwrap(), route["withdrawn"].as_str().map(String::from))
}

#[test]
fn ecmp_spreads_flows_and_each_node_answers_for_its_own_health_and_death() {
    let net = ClusterNet::up("clua", 2, BACKENDS);
    let addrs = backend_addrs();
    let _http = servers::http(&net.srv(), &addrs.iter().map(String::as_str).collect::<Vec<_>>(), None);
    let mut n1 = net.start_node(1, &node_config(&net, 1, BACKENDS, ""));
    let n2 = net.start_node(2, &node_config(&net, 2, BACKENDS, ""));
    await_hops(&net, &both(), Duration::from_secs(30));

    // 200 connections, spread over both nodes by the router's L4 hash, all answered.
    let failures = connections(&net, 200);
    assert!(failures.is_empty(), "{} failed: {:?}", failures.len(), &failures[..failures.len().min(5)]);
    let (p1, p2) = (packets_to_backends(&n1), packets_to_backends(&n2));
    assert!(p1 > 0 && p2 > 0, "both nodes carry flows: {p1} and {p2} packets to backends");
    let status = n1.ctl_json(&["status"]);
    assert_eq!(status["bgp"]["neighbors"][0]["up"], true, "{status}");
    assert_eq!(route_state(&n1, "198.18.10.10/32"), (true, None));
    assert_eq!(route_state(&n1, "198.18.12.1/32"), (true, None), "its local IP, for the replies");
    let text = n1.ctl(&["status"]).1;
    assert!(text.contains("198.18.0.254  65000  yes  up") && text.contains("198.18.10.10/32  vip       yes"), "{text}");
    let metrics = common::stdout(&run_in(&net.node(1), &["curl", "-s", "http://127.0.0.1:9273/metrics"]));
    assert!(metrics.contains("sluice_bgp_neighbor_up{neighbor=\"198.18.0.254\"} 1"), "{metrics}");
    assert!(metrics.contains("sluice_route_announced{prefix=\"198.18.10.10/32\"} 1"), "{metrics}");

    // Node 1 alone loses its backends (its kernel, which health checks leave from, cannot reach
    // them; its data path and node 2 are untouched): the VIP leaves node 1 only.
    run_in(&net.node(1), &["ip", "route", "add", "prohibit", "198.18.1.0/24"]);
    let took = await_hops(&net, &[node_address(2)], Duration::from_secs(10));
    eprintln!("node 1's VIP withdrawn {took:?} after its backends became unreachable (checks every 200ms, fall 2)");
    assert_eq!(route_state(&n1, "198.18.10.10/32"), (false, Some("no_quorum".into())));
    assert_eq!(route_state(&n1, "198.18.12.1/32"), (true, None), "local IPs stay for existing sessions");
    let failures = connections(&net, 50);
    assert!(failures.is_empty(), "node 2 serves everyone: {failures:?}");
    run_in(&net.node(1), &["ip", "route", "del", "prohibit", "198.18.1.0/24"]);
    await_hops(&net, &both(), Duration::from_secs(10));

    // BIRD killed under a running Sluice: started again, the routes come back.
    let sluice_pid = n1.pid();
    let bird: Vec<i32> = net.node_pids(1).into_iter().filter(|&p| p != sluice_pid).collect();
    assert_eq!(bird.len(), 1, "one BIRD beside Sluice in node 1: {bird:?}");
    send_signal(bird[0], libc::SIGKILL);
    assert!(
        wait_until(Duration::from_secs(10), || n1.ctl_json(&["status"])["bgp"]["bird_restarts"] == 1),
        "BIRD was not restarted"
    );
    await_hops(&net, &both(), Duration::from_secs(15));
    let again: Vec<i32> = net.node_pids(1).into_iter().filter(|&p| p != sluice_pid).collect();
    assert!(again.len() == 1 && again != bird, "a new BIRD: {again:?}");

    // A reload that adds a VIP announces it, and one that removes it withdraws it, without
    // restarting BIRD (its BGP session stays up).
    let bird_pid: Vec<i32> = net.node_pids(1).into_iter().filter(|&p| p != sluice_pid).collect();
    let second = "\n[[service]]\nname = \"web2\"\nvip = \"198.18.10.11:80\"\nprotocol = \"tcp\"\n\
                  local_ips = [\"198.18.12.1\"]\n[[service.backend]]\naddress = \"198.18.1.2:80\"\n";
    let log = n1.reload(&(node_config(&net, 1, BACKENDS, "") + second));
    assert!(log.contains("service web2 added"), "{log}");
    assert!(wait_until(Duration::from_secs(5), || net.next_hops("198.18.10.11") == [node_address(1)]), "announced");
    let log = n1.reload(&node_config(&net, 1, BACKENDS, ""));
    assert!(log.contains("service web2 removed"), "{log}");
    assert!(wait_until(Duration::from_secs(5), || net.next_hops("198.18.10.11").is_empty()), "withdrawn");
    let after: Vec<i32> = net.node_pids(1).into_iter().filter(|&p| p != sluice_pid).collect();
    assert_eq!(after, bird_pid, "the same BIRD all along");
    assert_eq!(n1.ctl_json(&["status"])["bgp"]["neighbors"][0]["up"], true);

    // A worker that stops polling (stopped by ptrace, the rest of Sluice running): the node's
    // routes are withdrawn, and come back when it polls again.
    let frozen = FrozenWorker::freeze(n1.pid());
    assert!(
        wait_until(Duration::from_secs(5), || route_state(&n1, "198.18.10.10/32")
            == (false, Some("worker_stalled".into()))),
        "a stuck worker left the VIP announced: {}",
        n1.ctl_json(&["status"])
    );
    assert_eq!(route_state(&n1, "198.18.12.1/32"), (false, Some("worker_stalled".into())));
    time_until_gone(&net, 1, Duration::from_secs(5));
    assert!(n1.log_text().contains("worker 0 has not polled for"), "{}", n1.log_text());
    drop(frozen);
    await_hops(&net, &both(), Duration::from_secs(30));
    assert!(n1.log_text().contains("worker 0 polls again after"));

    // SIGKILL of Sluice: BIRD goes with it (parent-death signal), BFD takes the routes away.
    n1.kill();
    let gone = time_until_gone(&net, 1, Duration::from_secs(5));
    eprintln!("node 1's routes gone from the router {gone:?} after SIGKILL of its Sluice");
    assert!(gone < Duration::from_millis(1500), "routes lingered {gone:?}");
    assert!(
        wait_until(Duration::from_secs(5), || net.node_pids(1).is_empty()),
        "BIRD outlived Sluice: {:?}",
        net.node_pids(1)
    );
    let failures = connections(&net, 50);
    assert!(failures.is_empty(), "after the routes went, node 2 serves everyone: {failures:?}");

    // SIGKILL of every process in the node's namespace at once.
    let mut n1 = net.start_node(1, &node_config(&net, 1, BACKENDS, ""));
    await_hops(&net, &both(), Duration::from_secs(30));
    for pid in net.node_pids(1) {
        send_signal(pid, libc::SIGKILL);
    }
    let gone = time_until_gone(&net, 1, Duration::from_secs(5));
    eprintln!("node 1's routes gone from the router {gone:?} after SIGKILL of everything in its namespace");
    assert!(gone < Duration::from_millis(1500), "routes lingered {gone:?}");
    n1.kill();
    let failures = connections(&net, 50);
    assert!(failures.is_empty(), "{failures:?}");
    drop(n2);
}

#[test]
fn drain_and_sigterm_lose_no_connection() {
    let net = ClusterNet::up("club", 2, BACKENDS);
    let addrs = backend_addrs();
    let _http = servers::http(&net.srv(), &addrs.iter().map(String::as_str).collect::<Vec<_>>(), None);
    // With session sync: a connection whose flow the router moves to the other node while it
    // is under way goes on there (without it, one caught mid-handshake at the instant of a
    // route change would break).
    let config = |k| node_config(&net, k, BACKENDS, "drain = \"2s\"") + &cluster_section(&net, k);
    let n1 = net.start_node(1, &config(1));
    let mut n2 = net.start_node(2, &config(2));
    await_hops(&net, &both(), Duration::from_secs(30));

    // Each exchange must end within 900 ms: a SYN or segment lost on the way (retransmitted
    // after 1 s, or 200 ms for data) makes it fail.
    let client =
        Client::start(&net.cli(), 3000, Duration::from_secs(60), Duration::from_millis(2), Duration::from_millis(900));
    let progress = |n: u64| {
        let from = client.count();
        assert!(wait_until(Duration::from_secs(20), || client.count() >= from + n), "the client is stuck");
    };
    progress(100);

    // drain-node: the VIP goes from the router, node 1 keeps forwarding; undrain brings it back.
    let (code, out, err) = n1.ctl(&["drain-node"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("node drained") && out.contains("no (drained)"), "{out}");
    await_hops(&net, &[node_address(2)], Duration::from_secs(5));
    progress(100);
    let (code, _, err) = n1.ctl(&["undrain-node"]);
    assert_eq!(code, 0, "{err}");
    await_hops(&net, &both(), Duration::from_secs(5));
    progress(100);

    // SIGTERM: the routes go first, forwarding goes on for the drain, then a clean exit.
    n2.signal(libc::SIGTERM);
    let started = Instant::now();
    await_hops(&net, &[node_address(1)], Duration::from_secs(5));
    let withdrawn = started.elapsed();
    assert!(!n2.exited(), "still forwarding {withdrawn:?} after SIGTERM");
    assert_eq!(n2.wait_exit(Duration::from_secs(15)), Some(0), "clean exit:\n{}", n2.log_text());
    let log = n2.log_text();
    assert!(log.contains("stop requested: withdrawing this node's VIPs, then forwarding for 2s"), "{log}");
    assert!(log.contains("drain over: stopping") && log.contains("bird (pid"), "{log}");
    assert!(started.elapsed() >= Duration::from_secs(2), "the drain lasted {:?}", started.elapsed());
    progress(100);

    let total = client.count();
    let failures = client.finish();
    eprintln!("{total} connections through drain, undrain and SIGTERM; VIP withdrawn {withdrawn:?} after SIGTERM");
    assert!(failures.is_empty(), "{} of {total} failed: {:?}", failures.len(), &failures[..failures.len().min(5)]);
    drop(n1);
}

#[test]
fn a_node_without_bird_refuses_to_start() {
    // No network needed: the check comes before any device is touched.
    let dir = Sluice::dir("nobird");
    std::fs::create_dir_all(&dir).unwrap();
    let config = format!(
        "{}\n[bgp]\nlocal_as = 65001\nbird = \"/nonexistent/bird\"\nruntime_dir = \"{}\"\n[[bgp.neighbor]]\naddress = \"198.18.0.254\"\nremote_as = 65000\n",
        common::config(""),
        dir.join("bird").display()
    );
    let path = dir.join("sluice.toml");
    std::fs::write(&path, config).unwrap();
    let out = common::run(common::sluice_bin(), &["--check-config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "the file itself is valid: {}", String::from_utf8_lossy(&out.stderr));
    let out = common::run(common::sluice_bin(), &["--config", path.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("bird = \"/nonexistent/bird\": no such executable (install BIRD 2"), "{err}");
    assert!(!err.contains("EAL"), "refused before DPDK started: {err}");
}
