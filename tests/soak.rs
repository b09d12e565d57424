//! The soak (run by `scripts/soak`, not by the test suite): minutes of mixed traffic through
//! the real binary while backends die and come back and the config is reloaded every few
//! seconds. Fresh UDP flows and datagrams, short TCP connections (half of them half-closed
//! first), long-lived connections; a backend cut off every few seconds (health down, its TCP
//! connections reset by `on_failure = "remove"`), weights and checks changed and a backend
//! removed and added back by reloads. At the end nothing is left behind: every session ends,
//! every local port is free, the neighbours are the next hops in use and the mbuf pool is as
//! full as before; and no worker loop took longer than `SOAK_MAX_LOOP_MS` (default 5).
//! `SOAK_SECONDS` (default 180, at most 3600) bounds the run.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::servers::{tcp_echo, UdpBackend};
use common::*;

const BACKENDS: [&str; 3] = ["198.18.1.2", "198.18.1.3", "198.18.1.4"];

/// The services of round `round`: weights, check timeouts and the echo service's backends
/// change from one reload to the next.
fn services(round: u32) -> String {
    let timeout = if round.is_multiple_of(2) { 200 } else { 250 };
    let health = |check: &str, extra: &str| {
        format!(
            "[service.health]\ncheck = \"{check}\"\ninterval = \"300ms\"\ntimeout = \"{timeout}ms\"\nrise = 2\nfall = 2\n{extra}"
        )
    };
    let mut text = String::from(
        "\n[sessions]\ncapacity = 65536\n[timeouts]\ntcp_syn = \"5s\"\ntcp_established = \"30s\"\n\
         tcp_fin_wait = \"5s\"\ntcp_close_wait = \"5s\"\ntcp_last_ack = \"5s\"\ntcp_time_wait = \"2s\"\n\
         tcp_closing = \"2s\"\nudp = \"5s\"\nudp_new = \"2s\"\n",
    );
    text +=
        "[[service]]\nname = \"dns\"\nvip = \"198.18.0.10:53\"\nprotocol = \"udp\"\nlocal_ips = [\"198.18.1.100\"]\n";
    text += &health("udp", "send = \"ping\"\nexpect = \"pong\"\n");
    for (i, b) in BACKENDS.iter().enumerate() {
        text += &format!("[[service.backend]]\naddress = \"{b}:53\"\nweight = {}\n", 1 + (round as usize + i) % 3);
    }
    text += "[[service]]\nname = \"echo\"\nvip = \"198.18.0.10:9000\"\nprotocol = \"tcp\"\nlocal_ips = [\"198.18.1.101\"]\n";
    text += &health("tcp", "on_failure = \"remove\"\n");
    let present = if round % 4 == 3 { &BACKENDS[..2] } else { &BACKENDS[..] };
    for b in present {
        text += &format!("[[service.backend]]\naddress = \"{b}:9000\"\n");
    }
    text
}

#[derive(Default)]
struct Tally {
    udp_sent: AtomicU64,
    udp_answered: AtomicU64,
    tcp_ok: AtomicU64,
    tcp_failed: AtomicU64,
    long_exchanges: AtomicU64,
    long_reconnects: AtomicU64,
}

/// Fresh UDP flows, 20 datagrams each, every datagram waiting up to 200 ms for its answer.
fn udp_traffic(stop: &AtomicBool, tally: &Tally) {
    while !stop.load(Ordering::Relaxed) {
        let socket = UdpSocket::bind("198.18.0.2:0").unwrap();
        socket.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        for i in 0..20 {
            let payload = format!("soak {i}");
            tally.udp_sent.fetch_add(1, Ordering::Relaxed);
            if socket.send_to(payload.as_bytes(), "198.18.0.10:53").is_err() {
                continue;
            }
            let mut buf = [0u8; 256];
            if matches!(socket.recv_from(&mut buf), Ok((n, _)) if &buf[..n] == payload.as_bytes()) {
                tally.udp_answered.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// One line through an echo connection.
fn exchange(c: &mut TcpStream, line: &str) -> bool {
    if c.write_all(format!("{line}\n").as_bytes()).is_err() {
        return false;
    }
    let mut buf = [0u8; 256];
    matches!(c.read(&mut buf), Ok(n) if n > 0 && String::from_utf8_lossy(&buf[..n]).trim_end().ends_with(line))
}

/// Short connections: three lines, then closed (every other one shut for writing first).
fn short_connections(stop: &AtomicBool, tally: &Tally) {
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let ok = match TcpStream::connect_timeout(&"198.18.0.10:9000".parse().unwrap(), Duration::from_secs(1)) {
            Ok(mut c) => {
                c.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
                let ok = (0..3).all(|i| exchange(&mut c, &format!("short {n} {i}")));
                if n.is_multiple_of(2) {
                    let _ = c.shutdown(Shutdown::Write);
                    let mut rest = Vec::new();
                    let _ = c.read_to_end(&mut rest);
                }
                ok
            }
            Err(_) => false,
        };
        let counter = if ok { &tally.tcp_ok } else { &tally.tcp_failed };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Twenty long-lived connections, one line each in turn; a broken one is opened again.
fn long_connections(stop: &AtomicBool, tally: &Tally) {
    let open = || {
        TcpStream::connect_timeout(&"198.18.0.10:9000".parse().unwrap(), Duration::from_secs(1)).ok().inspect(|c| {
            c.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        })
    };
    let mut conns: Vec<Option<TcpStream>> = (0..20).map(|_| open()).collect();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        for slot in conns.iter_mut() {
            n += 1;
            let alive = slot.as_mut().is_some_and(|c| exchange(c, &format!("long {n}")));
            if alive {
                tally.long_exchanges.fetch_add(1, Ordering::Relaxed);
            } else {
                tally.long_reconnects.fetch_add(1, Ordering::Relaxed);
                *slot = open();
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Involuntary context switches of Sluice's worker threads (`rte-worker-*`) so far: times the
/// kernel took a worker's core for something else in the middle of a loop.
fn worker_preemptions(pid: i32) -> u64 {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).into_iter().flatten().flatten();
    tasks
        .filter(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.starts_with("rte-worker")))
        .filter_map(|t| {
            let status = std::fs::read_to_string(t.path().join("status")).ok()?;
            let line = status.lines().find(|l| l.starts_with("nonvoluntary_ctxt_switches:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .sum()
}

#[test]
#[ignore = "minutes long: run by scripts/soak"]
fn soak() {
    let seconds: u64 = std::env::var("SOAK_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(180).clamp(10, 3600);
    let max_loop_ms: f64 = std::env::var("SOAK_MAX_LOOP_MS").ok().and_then(|s| s.parse().ok()).unwrap_or(5.0);
    let net = TestNet::up("slsoak", 3);
    let udp: Vec<UdpBackend> = BACKENDS.iter().map(|b| UdpBackend::start(&net.srv(), &format!("{b}:53"))).collect();
    let tcp_addrs: Vec<String> = BACKENDS.iter().map(|b| format!("{b}:9000")).collect();
    let _tcp = tcp_echo(&net.srv(), &tcp_addrs.iter().map(String::as_str).collect::<Vec<_>>());
    let mut sluice = Sluice::start(&net, &config(&services(0)));
    let up = |m: &str| metric_sum(m, "sluice_backend_up", &[]) == 6.0;
    assert!(
        wait_until(Duration::from_secs(30), || up(&scrape_metrics(&net.lb()))),
        "backends never up: {}",
        sluice.log_text()
    );
    let before = scrape_metrics(&net.lb());
    let (mbufs, ports) =
        (metric_sum(&before, "sluice_mbufs_available", &[]), metric_sum(&before, "sluice_local_ports_free", &[]));

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let workers: Vec<_> = [udp_traffic as fn(&AtomicBool, &Tally), short_connections, long_connections]
        .into_iter()
        .map(|work| {
            let (stop, tally, ns) = (stop.clone(), tally.clone(), net.cli());
            std::thread::spawn(move || in_netns(&ns, move || work(&stop, &tally)))
        })
        .collect();

    // Every 3 s a reload; every 5 s one backend cut off (all its traffic dropped) or let back.
    let started = Instant::now();
    let (mut reloads, mut flaps, mut cut): (u32, u32, Option<&str>) = (0, 0, None);
    let mut next_reload = started + Duration::from_secs(3);
    let mut next_flap = started + Duration::from_secs(5);
    while started.elapsed() < Duration::from_secs(seconds) {
        let now = Instant::now();
        if now >= next_reload {
            reloads += 1;
            std::fs::write(&sluice.config, with_api(&config(&services(reloads)), &sluice.socket)).unwrap();
            let (code, out, err) = sluice.ctl(&["reload"]);
            assert_eq!(code, 0, "reload {reloads}: {out}{err}");
            next_reload += Duration::from_secs(3);
        }
        if now >= next_flap {
            flaps += 1;
            let nft = |rule: &str| run_in(&net.srv(), &["nft", rule]);
            match cut.take() {
                Some(_) => assert!(nft("delete table inet soak").status.success()),
                None => {
                    let victim = BACKENDS[flaps as usize % BACKENDS.len()];
                    let rule = format!(
                        "add table inet soak; add chain inet soak in {{ type filter hook input priority 0; }}; \
                         add rule inet soak in ip daddr {victim} drop"
                    );
                    assert!(nft(&rule).status.success());
                    cut = Some(victim);
                }
            }
            next_flap += Duration::from_secs(5);
        }
        assert!(!sluice.exited(), "sluice stopped: {}", sluice.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    if cut.is_some() {
        let _ = run_in(&net.srv(), &["nft", "delete table inet soak"]);
    }
    let during = scrape_metrics(&net.lb());

    // Nothing left behind once the traffic stops.
    let settled = |m: &str| {
        metric_sum(m, "sluice_sessions", &[]) == 0.0
            && metric_sum(m, "sluice_local_ports_free", &[]) == ports
            && metric_sum(m, "sluice_mbufs_available", &[]) >= mbufs
            && metric_sum(m, "sluice_neighbours", &[]) <= 4.0
    };
    let clean = wait_until(Duration::from_secs(90), || settled(&scrape_metrics(&net.lb())));
    let after = scrape_metrics(&net.lb());
    let longest_ms = metric_sum(&after, "sluice_worker_longest_loop_seconds", &[]) * 1e3;
    let preempted = worker_preemptions(sluice.pid());
    let t = &*tally;
    eprintln!(
        "soak: {seconds} s, {reloads} reloads, {flaps} flaps; UDP {} sent, {} answered; TCP {} short \
         connections ok, {} failed; long-lived {} exchanges, {} reconnects; sessions at the end {} \
         (peak gauge {}), created {}, expired {}, evicted {}; local ports free {} of {ports}; mbufs \
         available {} (before {mbufs}); neighbours {}; drops {}; longest worker loop {longest_ms:.3} ms; \
         the workers were preempted {preempted} times (involuntary context switches)",
        t.udp_sent.load(Ordering::Relaxed),
        t.udp_answered.load(Ordering::Relaxed),
        t.tcp_ok.load(Ordering::Relaxed),
        t.tcp_failed.load(Ordering::Relaxed),
        t.long_exchanges.load(Ordering::Relaxed),
        t.long_reconnects.load(Ordering::Relaxed),
        metric_sum(&after, "sluice_sessions", &[]),
        metric_sum(&during, "sluice_sessions", &[]),
        metric_sum(&after, "sluice_sessions_created_total", &[]),
        metric_sum(&after, "sluice_sessions_expired_total", &[]),
        metric_sum(&after, "sluice_sessions_evicted_total", &[]),
        metric_sum(&after, "sluice_local_ports_free", &[]),
        metric_sum(&after, "sluice_mbufs_available", &[]),
        metric_sum(&after, "sluice_neighbours", &[]),
        metric_sum(&after, "sluice_packets_dropped_total", &[]),
    );
    assert!(clean, "something was left behind (see the line above)");
    assert!(t.udp_answered.load(Ordering::Relaxed) * 2 > t.udp_sent.load(Ordering::Relaxed), "UDP mostly unanswered");
    assert!(t.tcp_ok.load(Ordering::Relaxed) > t.tcp_failed.load(Ordering::Relaxed), "TCP mostly failed");
    assert!(
        longest_ms <= max_loop_ms,
        "a worker loop took {longest_ms:.3} ms (at most {max_loop_ms} allowed); the workers were preempted \
         {preempted} times: a worker's core shared with other tasks (no isolcpus) makes long loops"
    );
    assert_eq!(sluice.stop(Duration::from_secs(20)), Some(0), "{}", sluice.log_text());
    drop(udp);
}
