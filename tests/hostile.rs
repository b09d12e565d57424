//! What outsiders send and operators write, through the real binary (scripts/testnet):
//! - a flood of spoofed one-datagram UDP flows exhausts a local IP's ports, yet every fresh
//!   flow of a real client is served (`[sessions] when_full = "evict"`), and once the flood
//!   stops sessions, ports, neighbours and mbufs return to where they were;
//! - a client that shuts down its sending side still gets an answer 15 s later (FIN_WAIT);
//! - reloads retuning every health check under per-datagram traffic lose nothing;
//! - ARP from thousands of spoofed senders creates no neighbour and leaves real traffic alone;
//! - with two workers, a "fragmentation needed" from the client side reaches the worker that
//!   owns the session, whichever queue it came in on, and shrinks the backend's segments;
//! - configs that cannot run are refused with file:line:col and the reason.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::raw::{self, RawIp};
use common::servers::{udp_echo, UdpBackend};
use common::*;

const SETTLE: Duration = Duration::from_secs(15);
const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);

/// One datagram from a fresh socket (a new flow) in the client namespace, answered by the VIP
/// within `tries` sends of one second each.
fn fresh_flow_answered(net: &TestNet, port: u16, tries: u32) -> bool {
    in_netns(&net.cli(), move || {
        let socket = UdpSocket::bind("198.18.0.2:0").unwrap();
        socket.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        let payload = format!("fresh flow {}", socket.local_addr().unwrap().port());
        (0..tries).any(|_| {
            socket.send_to(payload.as_bytes(), (VIP, port)).unwrap();
            let mut buf = [0u8; 256];
            matches!(socket.recv_from(&mut buf), Ok((n, _)) if &buf[..n] == payload.as_bytes())
        })
    })
}

/// Spoofed one-datagram flows to `dst` from 198.18.0.100-199 (the client subnet), every one a
/// new source port: as fast as the kernel takes them, then (after `pace` is set) about 2,000
/// a second, until stopped or `limit` have gone.
struct Flood {
    stop: Arc<AtomicBool>,
    pub pace: Arc<AtomicBool>,
    pub sent: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl Flood {
    fn start(ns: &str, dst: SocketAddrV4, limit: u64) -> Flood {
        let socket = RawIp::open(ns);
        let (stop, pace, sent) =
            (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
        let (s, p, n) = (stop.clone(), pace.clone(), sent.clone());
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            let mut paced_from: Option<(Instant, u64)> = None;
            for i in 0..limit {
                if s.load(Ordering::Relaxed) || started.elapsed() > Duration::from_secs(120) {
                    break;
                }
                if p.load(Ordering::Relaxed) {
                    let (since, at) = *paced_from.get_or_insert((Instant::now(), i));
                    while (i - at) as f64 > since.elapsed().as_secs_f64() * 2000.0 && !s.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
                let src = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 100 + (i % 100) as u8), 1024 + (i / 100) as u16);
                if socket.send(&raw::udp_packet(src, dst, b"spoofed")) {
                    n.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        Flood { stop, pace, sent, thread: Some(thread) }
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn a_spoofed_udp_flood_leaves_every_fresh_flow_served_and_everything_back_to_baseline() {
    let net = TestNet::up("slx1", 2);
    let _echo = udp_echo(&net.srv(), &["198.18.1.2:53", "198.18.1.3:53"]);
    // More sessions than the local IP has ports (64,512): the ports run out first.
    // One-datagram flows last 30 s: longer than the flood takes to run the ports out and the
    // real client's flows after it.
    let services = "\n[sessions]\ncapacity = 100000\n[timeouts]\nudp_new = \"30s\"\n\
        [[service]]\nname = \"dns\"\nvip = \"198.18.0.10:53\"\nprotocol = \"udp\"\nlocal_ips = [\"198.18.1.100\"]\n\
        [[service.backend]]\naddress = \"198.18.1.2:53\"\n[[service.backend]]\naddress = \"198.18.1.3:53\"\n";
    let sluice = Sluice::start(&net, &config(services));
    assert!(wait_until(SETTLE, || fresh_flow_answered(&net, 53, 1)), "{}", sluice.log_text());
    let idle = |m: &str| {
        metric_sum(m, "sluice_sessions", &[]) == 0.0 && metric_sum(m, "sluice_local_ports_free", &[]) == 64512.0
    };
    let before = scrape_metrics(&net.lb());
    let mbufs = metric_sum(&before, "sluice_mbufs_available", &[]);

    let flood = Flood::start(&net.cli(), SocketAddrV4::new(VIP, 53), 2_000_000);
    let exhausted = wait_until(Duration::from_secs(60), || {
        metric_sum(&scrape_metrics(&net.lb()), "sluice_sessions_evicted_total", &[]) > 0.0
    });
    let during = scrape_metrics(&net.lb());
    assert!(
        exhausted,
        "the ports never ran out: {} spoofed datagrams sent, {} ports free",
        flood.sent.load(Ordering::Relaxed),
        metric_sum(&during, "sluice_local_ports_free", &[])
    );
    flood.pace.store(true, Ordering::Relaxed);
    // Up to the first flow left unanswered.
    let answered = (0..100).take_while(|_| fresh_flow_answered(&net, 53, 3)).count();
    let evicted = metric_sum(&scrape_metrics(&net.lb()), "sluice_sessions_evicted_total", &[]);
    let sent = flood.sent.load(Ordering::Relaxed);
    drop(flood);
    eprintln!(
        "flood: {sent} spoofed datagrams, {evicted} sessions evicted, {} ports free during it; \
         longest worker loop {:.3} ms",
        metric_sum(&during, "sluice_local_ports_free", &[]),
        metric_sum(&scrape_metrics(&net.lb()), "sluice_worker_longest_loop_seconds", &[]) * 1e3
    );
    assert_eq!(answered, 100, "fresh flows of a real client answered in a row during the flood");

    // Everything the flood took comes back: sessions expire, ports return, the neighbours it
    // made (its spoofed sources, asked for to send them the backends' answers) are forgotten,
    // and no mbuf is left behind.
    let back = wait_until(Duration::from_secs(90), || {
        let m = scrape_metrics(&net.lb());
        idle(&m)
            && metric_sum(&m, "sluice_neighbours", &[]) <= 4.0
            && metric_sum(&m, "sluice_mbufs_available", &[]) >= mbufs
    });
    let after = scrape_metrics(&net.lb());
    assert!(
        back,
        "not back to baseline: sessions {}, ports free {}, neighbours {}, mbufs {} (before {mbufs})",
        metric_sum(&after, "sluice_sessions", &[]),
        metric_sum(&after, "sluice_local_ports_free", &[]),
        metric_sum(&after, "sluice_neighbours", &[]),
        metric_sum(&after, "sluice_mbufs_available", &[])
    );
    assert!(fresh_flow_answered(&net, 53, 1));
}

#[test]
fn a_half_closed_request_is_answered_fifteen_seconds_later() {
    let net = TestNet::up("slx2", 2);
    // The backend reads the request to its end (the client's FIN), thinks for 15 s, answers.
    let listener = in_netns(&net.srv(), || TcpListener::bind("198.18.1.2:9100").unwrap());
    let backend = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut request = Vec::new();
        conn.read_to_end(&mut request).unwrap();
        let thinking = Instant::now();
        while thinking.elapsed() < Duration::from_secs(15) {
            std::thread::sleep(Duration::from_millis(100));
        }
        conn.write_all(&[b"answer to ".as_slice(), &request].concat()).unwrap();
    });
    let service = "\n[[service]]\nname = \"slow\"\nvip = \"198.18.0.10:9100\"\nprotocol = \"tcp\"\n\
        local_ips = [\"198.18.1.100\"]\n[[service.backend]]\naddress = \"198.18.1.2:9100\"\n";
    let sluice = Sluice::start(&net, &config(service));
    let reply = in_netns(&net.cli(), || {
        let deadline = Instant::now() + SETTLE;
        let mut c = loop {
            match TcpStream::connect_timeout(&"198.18.0.10:9100".parse().unwrap(), Duration::from_secs(1)) {
                Ok(c) => break c,
                Err(e) if Instant::now() > deadline => panic!("connect: {e}"),
                Err(_) => {}
            }
        };
        c.write_all(b"the request").unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(40))).unwrap();
        let mut reply = String::new();
        let read = c.read_to_string(&mut reply);
        (read.map_err(|e| e.to_string()), reply)
    });
    backend.join().unwrap();
    assert_eq!(reply, (Ok(21), "answer to the request".to_owned()), "{}", sluice.log_text());
}

#[test]
fn reloads_retuning_every_health_check_under_traffic_lose_nothing() {
    let net = TestNet::up("slx3", 3);
    let _backends: Vec<UdpBackend> =
        [2, 3].iter().map(|h| UdpBackend::start(&net.srv(), &format!("198.18.1.{h}:53"))).collect();
    let service = |timeout_ms: u32| {
        format!(
            "\n[[service]]\nname = \"dns\"\nvip = \"198.18.0.10:53\"\nprotocol = \"udp\"\nper_packet = true\n\
             min_active = 2\nlocal_ips = [\"198.18.1.100\"]\n\
             [service.health]\ncheck = \"udp\"\nsend = \"ping\"\nexpect = \"pong\"\ninterval = \"300ms\"\n\
             timeout = \"{timeout_ms}ms\"\nrise = 2\nfall = 2\n\
             [[service.backend]]\naddress = \"198.18.1.2:53\"\n[[service.backend]]\naddress = \"198.18.1.3:53\"\n"
        )
    };
    let sluice = Sluice::start(&net, &config(&service(250)));
    let socket = in_netns(&net.cli(), || UdpSocket::bind("198.18.0.2:0").unwrap());
    socket.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    // A datagram and its answer within 500 ms (a late answer to an earlier one is skipped).
    let exchange = |i: u64| {
        let payload = format!("datagram {i}");
        socket.send_to(payload.as_bytes(), (VIP, 53)).unwrap();
        let deadline = Instant::now() + Duration::from_millis(500);
        let mut buf = [0u8; 256];
        while Instant::now() < deadline {
            if matches!(socket.recv_from(&mut buf), Ok((n, _)) if &buf[..n] == payload.as_bytes()) {
                return true;
            }
        }
        false
    };
    assert!(wait_until(SETTLE, || exchange(0)), "never answered: {}", sluice.log_text());

    // Each reload changes every check's timeout; datagrams go on one after the other through
    // it and the second after, each waiting for its answer.
    let (mut sent, mut lost) = (0u64, 0u64);
    for round in 0..10u32 {
        let retuned = config(&service(if round.is_multiple_of(2) { 300 } else { 250 }));
        std::fs::write(&sluice.config, with_api(&retuned, &sluice.socket)).unwrap();
        let (code, out, err) = sluice.ctl(&["reload"]);
        assert_eq!(code, 0, "reload {round}: {out}{err}");
        let until = Instant::now() + Duration::from_millis(1200);
        while Instant::now() < until {
            sent += 1;
            lost += u64::from(!exchange(sent));
        }
    }
    eprintln!("{sent} datagrams through 10 reloads, {lost} lost");
    assert_eq!(lost, 0, "of {sent} datagrams");
    assert!(sent >= 1000, "only {sent} datagrams in 12 s");
}

#[test]
fn arp_from_spoofed_senders_creates_no_neighbour_and_leaves_traffic_alone() {
    let net = TestNet::up("slx4", 2);
    let _echo = udp_echo(&net.srv(), &["198.18.1.2:53"]);
    let service = "\n[[service]]\nname = \"dns\"\nvip = \"198.18.0.10:53\"\nprotocol = \"udp\"\n\
        local_ips = [\"198.18.1.100\"]\n[[service.backend]]\naddress = \"198.18.1.2:53\"\n";
    let sluice = Sluice::start(&net, &config(service));
    assert!(wait_until(SETTLE, || fresh_flow_answered(&net, 53, 1)), "{}", sluice.log_text());

    // 10,000 senders (more than a worker's 4,096 neighbours), each asking for the VIP and the
    // host; from addresses in 198.19.0.0/16, MACs made up; paced so that the port takes them.
    let wan = Capture::open(&net.cli(), "cli0");
    for i in 0..10_000u32 {
        if i % 200 == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
        let sender = Ipv4Addr::new(198, 19, (i >> 8) as u8, i as u8);
        let mac = [0x02, 0x5e, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8];
        for target in [VIP, Ipv4Addr::new(198, 18, 0, 1)] {
            assert!(wan.send(&raw::arp_request(mac, sender, target)), "send ARP {i}");
        }
    }
    // A client address the balancer has never seen gets its answers.
    assert!(run_in(&net.cli(), &["ip", "addr", "add", "198.18.0.3/24", "dev", "cli0"]).status.success());
    let new_client = in_netns(&net.cli(), || {
        let socket = UdpSocket::bind("198.18.0.3:0").unwrap();
        socket.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        (0..20)
            .filter(|i| {
                let payload = format!("from a new client {i}");
                socket.send_to(payload.as_bytes(), (VIP, 53)).unwrap();
                let mut buf = [0u8; 256];
                matches!(socket.recv_from(&mut buf), Ok((n, _)) if &buf[..n] == payload.as_bytes())
            })
            .count()
    });
    assert_eq!(new_client, 20, "a new client answered after the ARP flood");
    // The neighbours are the next hops in use (the backend, the two clients), nothing more.
    let m = scrape_metrics(&net.lb());
    assert!(
        metric_sum(&m, "sluice_neighbours", &[]) <= 4.0,
        "{} neighbours after the ARP flood",
        metric_sum(&m, "sluice_neighbours", &[])
    );
    assert_eq!(metric_sum(&m, "sluice_packets_dropped_total", &["reason=\"neighbour_unresolved\""]), 0.0);
}

const GREETING: &str = r#"
[[service]]
name = "greeting"
vip = "198.18.0.10:9000"
protocol = "tcp"
local_ips = ["198.18.1.102", "198.18.1.103"]
[[service.backend]]
address = "198.18.1.2:9000"
"#;

/// The path MTU the backend's kernel holds for `local_ip`, if any.
fn backend_pmtu(net: &TestNet, local_ip: &str) -> Option<u32> {
    let route = stdout(&run_in(&net.srv(), &["ip", "route", "get", local_ip, "from", "198.18.1.2"]));
    let mut words = route.split_whitespace();
    words.find(|&w| w == "mtu")?;
    words.next()?.parse().ok()
}

#[test]
fn with_two_workers_frag_needed_from_the_client_side_reaches_the_session_and_shrinks_backend_segments() {
    let net = TestNet::up("slx5", 2);
    // Every connection is greeted with 100 bytes, then held open.
    let listener = in_netns(&net.srv(), || TcpListener::bind("198.18.1.2:9000").unwrap());
    listener.set_nonblocking(true).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let server = std::thread::spawn(move || {
        let mut held = Vec::new();
        while !s.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((mut c, _)) => {
                    let _ = c.write_all(&[b'g'; 100]);
                    held.push(c);
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    let sluice = Sluice::start(&net, &two_worker_config(GREETING));
    let wan = Capture::open(&net.cli(), "cli0");

    // Connections from 16 client ports: RSS spreads them over both workers.
    let mut greeted = Vec::new();
    let mut held = Vec::new();
    for _ in 0..16 {
        let (c, port) = in_netns(&net.cli(), || {
            let deadline = Instant::now() + SETTLE;
            loop {
                match TcpStream::connect_timeout(&"198.18.0.10:9000".parse().unwrap(), Duration::from_secs(1)) {
                    Ok(mut c) => {
                        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                        let mut buf = [0u8; 100];
                        c.read_exact(&mut buf).unwrap();
                        let port = c.local_addr().unwrap().port();
                        break (c, port);
                    }
                    Err(e) if Instant::now() > deadline => panic!("connect: {e}"),
                    Err(_) => {}
                }
            }
        });
        // The backend's greeting as the client saw it: its sequence number, for the quote.
        let segment = wan
            .find(Duration::from_secs(5), |f| {
                f.len() > 54 + 99
                    && f[12..14] == [8, 0]
                    && f[23] == 6
                    && f[26..30] == VIP.octets()
                    && u16::from_be_bytes([f[36], f[37]]) == port
            })
            .expect("the greeting seen on the client's link");
        let seq = u32::from_be_bytes([segment[38], segment[39], segment[40], segment[41]]);
        greeted.push((port, seq.wrapping_add(100)));
        held.push(c);
    }
    // Session listings are gathered from the workers between bursts: polled.
    let listed = || sluice.ctl_json(&["sessions"]).as_array().cloned().unwrap_or_default();
    assert!(wait_until(SETTLE, || listed().len() >= greeted.len()), "sessions listed: {:?}", listed());
    let sessions = listed();
    let locals: std::collections::BTreeSet<String> =
        sessions.iter().map(|r| r["local"].as_str().unwrap().split(':').next().unwrap().to_owned()).collect();
    assert_eq!(locals.len(), 2, "both workers (both local IPs) have connections: {sessions:?}");
    for ip in &locals {
        assert_eq!(backend_pmtu(&net, ip), None, "no path MTU known yet for {ip}");
    }

    // A router on the client's path (here the client's own address) says the segments towards
    // the client are too big: 1200 bytes at most. Each error quotes one connection's segment.
    let socket = RawIp::open(&net.cli());
    for &(port, seq) in &greeted {
        let mut quoted = raw::ipv4_header(VIP, Ipv4Addr::new(198, 18, 0, 2), 6, 20);
        quoted.extend_from_slice(&9000u16.to_be_bytes());
        quoted.extend_from_slice(&port.to_be_bytes());
        quoted.extend_from_slice(&seq.to_be_bytes());
        assert!(socket.send(&raw::frag_needed(Ipv4Addr::new(198, 18, 0, 2), VIP, 1200, &quoted)));
    }
    let relayed = wait_until(SETTLE, || {
        metric_sum(&scrape_metrics(&net.lb()), "sluice_icmp_errors_relayed_total", &[]) >= greeted.len() as f64
    });
    let m = scrape_metrics(&net.lb());
    assert!(
        relayed,
        "{} of {} relayed; no_session drops {}",
        metric_sum(&m, "sluice_icmp_errors_relayed_total", &[]),
        greeted.len(),
        metric_sum(&m, "sluice_packets_dropped_total", &["reason=\"no_session\""])
    );
    for ip in &locals {
        assert!(wait_until(SETTLE, || backend_pmtu(&net, ip) == Some(1200)), "the backend's path MTU to {ip}");
    }
    stop.store(true, Ordering::Relaxed);
    drop(held);
    server.join().unwrap();
}

#[test]
fn configs_that_cannot_run_are_refused_with_the_place_and_the_reason() {
    let base = config("");
    let cases = [
        (
            format!("{base}\n[sessions]\ncapacity = 300000000\n"),
            "capacity",
            "12: sessions.capacity must be at most 268435456, got 300000000",
        ),
        (
            format!("{base}\n[sessions]\nwhen_full = \"lru\"\n"),
            "when_full",
            "13: invalid when_full action \"lru\": expected \"evict\" or \"drop\"",
        ),
        (
            format!("{base}\n[timeouts]\ntcp_fin_wait = \"0s\"\n"),
            "tcp_fin_wait",
            "16: invalid duration \"0s\": must be more than zero",
        ),
        (format!("{base}\n[timeouts]\nudp_new = \"ten\"\n"), "udp_new", "11: invalid duration \"ten\""),
        (
            base.replace("mbufs = 8191", "mbufs = 4000"),
            "mbufs",
            "9: dpdk.mbufs is 4000, but 1 worker(s) on 2 interface(s) need at least 5632",
        ),
    ];
    for (i, (text, key, wanted)) in cases.iter().enumerate() {
        let line = text.lines().position(|l| l.starts_with(key)).expect("the key is in the text") + 1;
        let path = write_temp(&format!("sluice-hostile-refused-{i}.toml"), text);
        let out = run(sluice_bin(), &["--check-config", path.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{key}: {err}");
        let place = format!("{}:{line}:{wanted}", path.display());
        assert!(err.contains(&place), "{key}: wanted {place:?} in {err}");
        let _ = std::fs::remove_file(path);
    }
}
