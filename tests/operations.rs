//! Operating Sluice through the real binary, with kernel clients and servers in namespaces:
//! - after bounded UDP and TCP traffic, the per-backend packet counters of `/metrics` and of
//!   `sluicectl --json services` equal what the backends' kernels received and sent;
//!   `promtool check metrics` accepts the exposition; a real Prometheus server scrapes it and
//!   its query API returns the same figures; every packet forwarded is in the workers' wait
//!   histogram;
//! - `sluicectl backend ... drain` takes effect on the next new connection while a long TCP
//!   exchange with the drained backend goes on; `enable` brings it back;
//! - malformed API requests get an error reply and change nothing, and a client that connects
//!   and sends nothing does not block others.
//! - with nothing to do the control loop sleeps: its thread wakes a few times a second, not
//!   tens (it shares the housekeeping core with everything else there), and still answers at
//!   once.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::servers::{tcp_echo, udp_echo};
use common::*;
use serde_json::Value;

const SERVICES: &str = r#"
[[service]]
name = "dns"
vip = "198.18.0.10:53"
protocol = "udp"
local_ips = ["198.18.1.100"]
[[service.backend]]
address = "198.18.1.2:53"
[[service.backend]]
address = "198.18.1.3:53"

[[service]]
name = "echo"
vip = "198.18.0.10:9000"
protocol = "tcp"
local_ips = ["198.18.1.101"]
[[service.backend]]
address = "198.18.1.2:9000"
[[service.backend]]
address = "198.18.1.3:9000"
"#;

/// Segments and datagrams the server namespace's kernel took in and sent out.
fn kernel_counts(ns: &str) -> (u64, u64) {
    let snmp = stdout(&run_in(ns, &["cat", "/proc/net/snmp"]));
    let field = |proto: &str, name: &str| -> u64 {
        let mut lines = snmp.lines().filter(|l| l.starts_with(&format!("{proto}:")));
        let (names, values) = (lines.next().unwrap_or(""), lines.next().unwrap_or(""));
        let at = names.split_whitespace().position(|n| n == name).unwrap_or(0);
        values.split_whitespace().nth(at).and_then(|v| v.parse().ok()).unwrap_or(0)
    };
    let received = field("Tcp", "InSegs") + field("Udp", "InDatagrams");
    let sent = field("Tcp", "OutSegs") + field("Tcp", "RetransSegs") + field("Udp", "OutDatagrams");
    (received, sent)
}

fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter(|l| labels.iter().all(|(k, v)| l.contains(&format!("{k}=\"{v}\""))))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

fn scrape(net: &TestNet) -> String {
    let out = run_in(&net.lb(), &["curl", "-sS", "--max-time", "5", "http://127.0.0.1:9273/metrics"]);
    assert!(out.status.success(), "scrape: {}", String::from_utf8_lossy(&out.stderr));
    stdout(&out)
}

#[test]
fn counters_match_the_traffic_in_metrics_sluicectl_and_prometheus() {
    let net = TestNet::up("slm", 3);
    let udp = udp_echo(&net.srv(), &["198.18.1.2:53", "198.18.1.3:53"]);
    let tcp = tcp_echo(&net.srv(), &["198.18.1.2:9000", "198.18.1.3:9000"]);
    let sluice = Sluice::start(&net, &config(SERVICES));
    let (in0, out0) = kernel_counts(&net.srv());

    let answered = in_netns(&net.cli(), || {
        let mut answered = 0;
        // All ten sockets stay open, so that no client port is reused (one session each).
        let flows: Vec<UdpSocket> = (0..10).map(|_| UdpSocket::bind("198.18.0.2:0").unwrap()).collect();
        for (flow, s) in flows.iter().enumerate() {
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            for i in 0..20 {
                s.send_to(format!("flow {flow} datagram {i}").as_bytes(), "198.18.0.10:53").unwrap();
                if s.recv_from(&mut [0u8; 128]).is_ok() {
                    answered += 1;
                }
            }
        }
        for c in 0..6 {
            let mut conn =
                TcpStream::connect_timeout(&"198.18.0.10:9000".parse().unwrap(), Duration::from_secs(5)).unwrap();
            conn.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            for i in 0..10 {
                conn.write_all(format!("conn {c} line {i}\n").as_bytes()).unwrap();
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
            }
            conn.shutdown(std::net::Shutdown::Both).unwrap();
        }
        answered
    });
    assert_eq!(answered, 200, "every datagram echoed (the first may wait for ARP, within 2 s)");

    // The backends' kernels and Sluice's counters must come to the same figures (the last
    // FIN/ACKs may still be on their way: both are read again until they agree).
    let sluice_sums = || {
        let services = sluice.ctl_json(&["services"]);
        let backends: Vec<Value> =
            services.as_array().unwrap().iter().flat_map(|s| s["backends"].as_array().unwrap().clone()).collect();
        let sum = |key: &str| backends.iter().map(|b| b[key].as_u64().unwrap()).sum::<u64>();
        (sum("packets_to_backend"), sum("packets_from_backend"))
    };
    let kernel = || {
        let (in1, out1) = kernel_counts(&net.srv());
        (in1 - in0, out1 - out0)
    };
    let agreed = wait_until(Duration::from_secs(20), || sluice_sums() == kernel());
    let (received, sent) = kernel();
    assert!(agreed, "sluicectl {:?} vs the backends' kernel {:?}", sluice_sums(), (received, sent));
    assert!(received >= 200 + 60 && sent >= 200 + 60, "traffic reached the backends: {received} / {sent}");
    assert_eq!(udp.total(), 200);
    drop(tcp);
    let services = sluice.ctl_json(&["services"]);
    let dns: Vec<u64> =
        services[0]["backends"].as_array().unwrap().iter().map(|b| b["packets_to_backend"].as_u64().unwrap()).collect();
    assert_eq!(dns, [udp.count(0), udp.count(1)], "UDP datagrams per backend");

    // /metrics: the same figures.
    let text = scrape(&net);
    assert_eq!(metric(&text, "sluice_backend_packets_total", &[("direction", "to_backend")]), received);
    assert_eq!(metric(&text, "sluice_backend_packets_total", &[("direction", "from_backend")]), sent);
    assert_eq!(metric(&text, "sluice_sessions_created_total", &[("service", "dns")]), 10);
    assert_eq!(metric(&text, "sluice_sessions_created_total", &[("service", "echo")]), 6);
    assert_eq!(metric(&text, "sluice_backend_up", &[("backend", "198.18.1.2:53")]), 1);
    // Every packet a worker took is in its wait histogram once: each one counted to or from a
    // backend passed through a worker (ARP and the host's own packets come on top).
    let waited = metric(&text, "sluice_worker_packet_wait_seconds_count", &[]);
    assert!(waited >= received + sent, "packets in the wait histogram: {waited}, forwarded {}", received + sent);
    assert_eq!(metric(&text, "sluice_worker_packet_wait_seconds_bucket", &[("le", "+Inf")]), waited);
    assert!(
        text.contains("# HELP sluice_packets_dropped_total")
            && text.contains("# TYPE sluice_port_packets_total counter")
    );
    let path = write_temp("sluice-metrics.txt", &text);
    let check = Command::new("promtool")
        .arg("check")
        .arg("metrics")
        .stdin(std::fs::File::open(&path).unwrap())
        .output()
        .expect("promtool");
    assert!(check.status.success(), "promtool: {}{}", stdout(&check), String::from_utf8_lossy(&check.stderr));

    // A real Prometheus server in the balancer's namespace scrapes it.
    let prometheus = Prometheus::start(&net);
    let query = "sum(sluice_backend_packets_total{direction=\"to_backend\"})";
    let mut seen = None;
    wait_until(Duration::from_secs(30), || {
        seen = prometheus.query(query);
        seen == Some(received)
    });
    assert_eq!(seen, Some(received), "Prometheus's view of to_backend packets");
    assert_eq!(prometheus.query("sum(sluice_backend_packets_total{direction=\"from_backend\"})"), Some(sent));

    // `sluicectl services` as `ipvsadm -Ln --stats --rate`: sessions opened (Conns) per
    // service; rates over the last second while a client sends, back to zero after it stops.
    let conns = |s: &Value| s["backends"].as_array().unwrap().iter().map(|b| b["connections"].as_u64().unwrap()).sum();
    let services = sluice.ctl_json(&["services"]);
    assert_eq!((conns(&services[0]), conns(&services[1])), (10u64, 6u64), "{services:#}");
    let (code, table, _) = sluice.ctl(&["services"]);
    assert_eq!(code, 0);
    assert!(table.starts_with("PROT VIP SCHEDULER") && table.contains("CONNS") && table.contains("INPPS"), "{table}");
    let rate = || {
        let services = sluice.ctl_json(&["services"]);
        services[0]["backends"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["rates"]["packets_to_backend"].as_f64().unwrap())
            .sum::<f64>()
    };
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    let sender = in_netns(&net.cli(), move || {
        let stop = stopped;
        std::thread::spawn(move || {
            let socket = UdpSocket::bind("198.18.0.2:0").unwrap();
            // About 100 datagrams a second, for 6 s at most.
            for _ in 0..600 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let _ = socket.send_to(b"rate", "198.18.0.10:53");
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    });
    let moving = wait_until(Duration::from_secs(5), || rate() >= 20.0);
    stop.store(true, Ordering::Relaxed);
    sender.join().unwrap();
    assert!(moving, "INPPS while 100 datagrams a second go to the dns service: {}", rate());
    assert!(wait_until(Duration::from_secs(5), || rate() == 0.0), "rates back to zero: {}", rate());
}

/// `prometheus` in the balancer namespace, scraping 127.0.0.1:9273 every second.
struct Prometheus {
    child: Child,
    net: String,
}

impl Prometheus {
    fn start(net: &TestNet) -> Prometheus {
        let dir = std::env::temp_dir().join(format!("sluice-prometheus-{}", net.name));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: sluice\n    static_configs:\n      - targets: ['127.0.0.1:9273']\n",
        )
        .unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &net.lb(), "prometheus"])
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg("--web.listen-address=127.0.0.1:9090")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap())
            .spawn()
            .expect("start prometheus");
        Prometheus { child, net: net.lb() }
    }

    /// The value of an instant query returning one sample.
    fn query(&self, q: &str) -> Option<u64> {
        let out = run_in(
            &self.net,
            &[
                "curl",
                "-sS",
                "--max-time",
                "2",
                "-G",
                "http://127.0.0.1:9090/api/v1/query",
                "--data-urlencode",
                &format!("query={q}"),
            ],
        );
        let v: Value = serde_json::from_str(&stdout(&out)).ok()?;
        v["data"]["result"][0]["value"][1].as_str()?.parse::<f64>().ok().map(|f| f as u64)
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        send_signal(self.child.id() as i32, libc::SIGTERM);
        if !wait_until(Duration::from_secs(10), || matches!(self.child.try_wait(), Ok(Some(_)))) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

#[test]
fn drain_takes_effect_on_the_next_connection_and_spares_the_running_one() {
    let net = TestNet::up("sld", 3);
    let tcp = tcp_echo(&net.srv(), &["198.18.1.2:9000", "198.18.1.3:9000"]);
    let sluice = Sluice::start(&net, &config(SERVICES));
    let connect = |ns: String| {
        in_netns(&ns, || {
            let c = TcpStream::connect_timeout(&"198.18.0.10:9000".parse().unwrap(), Duration::from_secs(5)).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            c
        })
    };
    let ask = |c: &mut TcpStream, msg: &str| -> String {
        c.write_all(format!("{msg}\n").as_bytes()).unwrap();
        let mut buf = [0u8; 256];
        let n = c.read(&mut buf).expect("echo");
        String::from_utf8_lossy(&buf[..n]).split(' ').next().unwrap_or("").to_owned()
    };
    let mut long = connect(net.cli());
    let drained = ask(&mut long, "hello");
    assert!(drained.starts_with("198.18.1."), "{drained}");

    let (code, out, err) = sluice.ctl(&["backend", "echo", &format!("{drained}:9000"), "drain"]);
    assert_eq!(code, 0, "{out}{err}");
    let services = sluice.ctl_json(&["services"]);
    let state =
        services[1]["backends"].as_array().unwrap().iter().find(|b| b["address"] == format!("{drained}:9000")).unwrap()
            ["state"]
            .clone();
    assert_eq!(state, "draining");

    for i in 0..10 {
        let mut c = connect(net.cli());
        assert_ne!(ask(&mut c, "new"), drained, "new connection {i} went to the drained backend");
        assert_eq!(ask(&mut long, &format!("still there {i}")), drained, "the running exchange goes on");
    }
    let (code, _, _) = sluice.ctl(&["backend", "echo", &format!("{drained}:9000"), "enable"]);
    assert_eq!(code, 0);
    let back = (0..10).map(|_| ask(&mut connect(net.cli()), "again")).filter(|b| *b == drained).count();
    assert!(back >= 4, "the enabled backend takes its share again ({back} of 10)");
    drop(tcp);
}

#[test]
fn malformed_requests_are_refused_and_silent_clients_block_nobody() {
    let net = TestNet::up("sla", 3);
    let sluice = Sluice::start(&net, &config(SERVICES));
    let before = sluice.ctl_json(&["services"]);

    let _silent = UnixStream::connect(&sluice.socket).expect("connect");
    let mut rude = UnixStream::connect(&sluice.socket).expect("connect");
    rude.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut replies = BufReader::new(rude.try_clone().unwrap());
    for bad in [
        "this is not json",
        r#"{"cmd":"explode"}"#,
        r#"{"cmd":"backend","service":"dns","address":"198.18.1.2:53","action":"weight","weight":70000}"#,
        r#"{"cmd":"backend","service":"nope","address":"198.18.1.2:53","action":"drain"}"#,
    ] {
        rude.write_all(format!("{bad}\n").as_bytes()).unwrap();
        let mut line = String::new();
        replies.read_line(&mut line).expect("a reply");
        let v: Value = serde_json::from_str(&line).expect("JSON reply");
        assert_eq!(v["ok"], false, "{bad} -> {line}");
        assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
    let (code, out, err) = sluice.ctl(&["status"]);
    assert_eq!(code, 0, "status while a client sits silent: {err}");
    assert!(out.contains("wan") && out.contains("lan"), "{out}");
    assert_eq!(sluice.ctl_json(&["services"]), before, "refused requests changed nothing");
    let (code, _, err) = sluice.ctl(&["backend", "dns", "198.18.1.9:53", "drain"]);
    assert_eq!(code, 1, "{err}");
}

/// How often the thread `tid` of process `pid` has gone to sleep (its voluntary switches).
fn sleeps(pid: i32, tid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/status")).expect("thread status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("voluntary_ctxt_switches in {status}"))
}

#[test]
fn an_idle_control_loop_sleeps_until_it_is_needed() {
    let net = TestNet::up("sli", 3);
    let sluice = Sluice::start(&net, &config(SERVICES));
    // The control loop runs on the process's main thread; nothing asks anything of it below
    // (no health checks configured, no API client, no scraper) until the window has closed.
    let pid = sluice.pid();
    let window = Duration::from_secs(2);
    let asleep_before = sleeps(pid, pid);
    let started = std::time::Instant::now();
    std::thread::sleep(window);
    let asleep_after = sleeps(pid, pid);
    let per_second = (asleep_after - asleep_before) as f64 / started.elapsed().as_secs_f64();
    // It sleeps until a socket, a signal or a timer needs it; the periodic duties (rates each
    // second, the one-second stall watchdog) need it about ten times a second. Waiting on the
    // API, the health checks and the metrics in turn, 20 ms each, it woke 60 times a second.
    assert!(per_second < 25.0, "the idle control loop went to sleep {per_second:.0} times a second");
    let (code, out, err) = sluice.ctl(&["status"]);
    assert_eq!(code, 0, "status from a sleeping control loop: {err}");
    assert!(out.contains("wan"), "{out}");
}
