//! The cluster network of `scripts/clusternet` (a router running BIRD with ECMP, one-armed
//! Sluice nodes, clients and backends behind the router), node configs for it, and what the
//! tests read off the router.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{repo, run, run_in, stdout, Sluice};

pub const VIP: &str = "198.18.10.10";
/// Where the router reaches node `k`.
pub fn node_address(k: u32) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 0, 10 + k as u8)
}

/// The namespaces of `scripts/clusternet up NAME NODES BACKENDS`; removed on drop, also when
/// the test fails (leftovers of a crashed run are removed by `up`).
pub struct ClusterNet {
    pub name: String,
    pub nodes: u32,
}

impl ClusterNet {
    pub fn up(name: &str, nodes: u32, backends: u32) -> ClusterNet {
        let script = repo().join("scripts/clusternet");
        let out = run(script.to_str().unwrap(), &["up", name, &nodes.to_string(), &backends.to_string()]);
        assert!(out.status.success(), "clusternet up: {}", String::from_utf8_lossy(&out.stderr));
        ClusterNet { name: name.to_owned(), nodes }
    }

    pub fn router(&self) -> String {
        format!("{}-rt", self.name)
    }

    pub fn cli(&self) -> String {
        format!("{}-cli", self.name)
    }

    pub fn srv(&self) -> String {
        format!("{}-srv", self.name)
    }

    pub fn node(&self, k: u32) -> String {
        format!("{}-n{k}", self.name)
    }

    /// The next hops of the router's route to `prefix` (none when it has no route).
    pub fn next_hops(&self, prefix: &str) -> Vec<Ipv4Addr> {
        let text = stdout(&run_in(&self.router(), &["ip", "route", "show", prefix]));
        let mut hops: Vec<Ipv4Addr> = text
            .split_whitespace()
            .collect::<Vec<_>>()
            .windows(2)
            .filter(|w| w[0] == "via")
            .filter_map(|w| w[1].parse().ok())
            .collect();
        hops.sort();
        hops
    }

    /// Starts Sluice as node `k` with `config`; its files live in `Sluice::dir(self.tag(k))`.
    pub fn start_node(&self, k: u32, config: &str) -> Sluice {
        Sluice::start_in(&self.node(k), &self.tag(k), config)
    }

    pub fn tag(&self, k: u32) -> String {
        format!("{}-n{k}", self.name)
    }

    /// The pids of every process in node `k`'s namespace.
    pub fn node_pids(&self, k: u32) -> Vec<i32> {
        stdout(&run("ip", &["netns", "pids", &self.node(k)]))
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }

    pub fn down(&self) {
        let _ = run(repo().join("scripts/clusternet").to_str().unwrap(), &["down", &self.name]);
    }
}

impl Drop for ClusterNet {
    fn drop(&mut self) {
        self.down();
    }
}

/// The cluster key of `net`'s nodes, written once.
pub fn cluster_key(net: &ClusterNet) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("sluice-test-{}-cluster.key", net.name));
    std::fs::write(&path, "a test cluster key, 32 bytes long\n").expect("key file");
    path
}

/// The `[cluster]` section of node `k` of `net` (every other node its peer).
pub fn cluster_section(net: &ClusterNet, k: u32) -> String {
    let peers: Vec<String> = (1..=net.nodes).filter(|&j| j != k).map(|j| format!("\"{}\"", node_address(j))).collect();
    format!(
        "\n[cluster]\nnode = {k}\naddress = \"{}\"\npeers = [{}]\nkey_file = \"{}\"\n",
        node_address(k),
        peers.join(", "),
        cluster_key(net).display()
    )
}

/// What every node's config starts with: one-armed on `wan` (node `k`'s address), a default
/// route through the router, BGP to it (with BFD by default); `bgp_extra` goes into `[bgp]`.
fn node_base(net: &ClusterNet, k: u32, bgp_extra: &str) -> String {
    let runtime = Sluice::dir(&net.tag(k)).join("bird");
    format!(
        r#"
[dpdk]
args = ["--no-pci", "--vdev=net_af_packet0,iface=lb0"]
hugepages = false
mbufs = 8191

[cpu]
control = 0
workers = [1]
idle = "adaptive"

[[interface]]
name = "wan"
device = "net_af_packet0"
addresses = ["{address}/24"]

[[route]]
prefix = "0.0.0.0/0"
via = "198.18.0.254"

[bgp]
local_as = 65001
runtime_dir = "{runtime}"
{bgp_extra}

[[bgp.neighbor]]
address = "198.18.0.254"
remote_as = 65000
"#,
        address = node_address(k),
        runtime = runtime.display(),
    )
}

/// A service of node `k` on the VIP (local IP 198.18.12.k) over `backends` backends from
/// 198.18.1.2 on `port`; `more` is written into the `[[service]]` table.
fn service(name: &str, proto: &str, port: u16, k: u32, backends: u32, more: &str) -> String {
    let mut text = format!(
        "\n[[service]]\nname = \"{name}\"\nvip = \"{VIP}:{port}\"\nprotocol = \"{proto}\"\nlocal_ips = [\"198.18.12.{k}\"]\n{more}"
    );
    for i in 0..backends {
        text.push_str(&format!("\n[[service.backend]]\naddress = \"198.18.1.{}:{port}\"\n", 2 + i));
    }
    text
}

/// Node `k`'s config: `node_base`, and one TCP service on the VIP port 80 over `backends`
/// HTTP backends, checked by TCP every 200 ms.
pub fn node_config(net: &ClusterNet, k: u32, backends: u32, bgp_extra: &str) -> String {
    let checks = "\n[service.health]\ncheck = \"tcp\"\ninterval = \"200ms\"\ntimeout = \"150ms\"\nrise = 2\nfall = 2\n";
    node_base(net, k, bgp_extra) + &service("web", "tcp", 80, k, backends, checks)
}

/// Node `k`'s config for the sync tests: `node_base` with two services over `backends`
/// backends and no health checks (a check's own resets would blur the backends' reset
/// counters): `echo`, TCP :9000, and `uecho`, UDP :9001, both `maglev`; with `sync`, the
/// `[cluster]` section.
pub fn sync_config(net: &ClusterNet, k: u32, backends: u32, sync: bool) -> String {
    let mut text = node_base(net, k, "drain = \"1s\"");
    if sync {
        text.push_str(&cluster_section(net, k));
    }
    for (name, proto, port) in [("echo", "tcp", 9000), ("uecho", "udp", 9001)] {
        text.push_str(&service(name, proto, port, k, backends, "scheduler = \"maglev\"\n"));
    }
    text
}

/// One HTTP exchange with the VIP from the current namespace: `GET /`, the whole answer read.
/// `Err` says what went wrong; the answer must name a backend.
pub fn exchange(timeout: Duration) -> Result<(), String> {
    let started = Instant::now();
    let addr: SocketAddr = format!("{VIP}:80").parse().unwrap();
    let mut conn = TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect: {e}"))?;
    conn.set_read_timeout(Some(timeout)).unwrap();
    conn.set_write_timeout(Some(timeout)).unwrap();
    conn.write_all(b"GET / HTTP/1.0\r\n\r\n").map_err(|e| format!("send: {e}"))?;
    let mut answer = String::new();
    conn.read_to_string(&mut answer).map_err(|e| format!("read: {e}"))?;
    if started.elapsed() > timeout {
        Err(format!("took {:?}", started.elapsed()))
    } else if answer.contains("backend 198.18.1.") {
        Ok(())
    } else {
        Err(format!("unexpected answer {answer:?}"))
    }
}

/// A client in the clients' namespace opening one new connection after another (at most
/// `limit`, and for at most `deadline`) until stopped, every failure recorded. An exchange
/// fails on an error or when it takes longer than `timeout`: set below the kernel's first SYN
/// retransmission (1 s), a connection that lost a packet counts as failed.
pub struct Client {
    stop: Arc<AtomicBool>,
    pub done: Arc<AtomicU64>,
    pub failures: Arc<Mutex<Vec<String>>>,
    thread: Option<JoinHandle<()>>,
}

impl Client {
    pub fn start(ns: &str, limit: u64, deadline: Duration, pause: Duration, timeout: Duration) -> Client {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let (s, d, f) = (stop.clone(), done.clone(), failures.clone());
        let path = format!("/run/netns/{ns}");
        let thread = std::thread::spawn(move || {
            let file = std::fs::File::open(&path).expect("netns");
            // SAFETY: setns on this thread only.
            let rc = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns");
            let end = Instant::now() + deadline;
            while !s.load(Ordering::SeqCst) && d.load(Ordering::SeqCst) < limit && Instant::now() < end {
                let started = Instant::now();
                if let Err(e) = exchange(timeout) {
                    f.lock().unwrap().push(format!(
                        "connection {}: {e} after {:?}",
                        d.load(Ordering::SeqCst),
                        started.elapsed()
                    ));
                }
                d.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(pause);
            }
        });
        Client { stop, done, failures, thread: Some(thread) }
    }

    pub fn count(&self) -> u64 {
        self.done.load(Ordering::SeqCst)
    }

    /// Stops the client; the failures it saw.
    pub fn finish(mut self) -> Vec<String> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.failures.lock().unwrap().clone()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Packets node `sluice` sent to backends, summed over its services: how much it carried.
pub fn packets_to_backends(sluice: &Sluice) -> u64 {
    let services = sluice.ctl_json(&["services"]);
    services
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["backends"].as_array().cloned().unwrap_or_default())
        .map(|b| b["packets_to_backend"].as_u64().unwrap_or(0))
        .sum()
}

/// A worker thread of a Sluice process stopped by ptrace (`PTRACE_SEIZE` + `PTRACE_INTERRUPT`
/// stop that one thread; the control thread and BIRD go on): a stuck worker. Released on drop.
pub struct FrozenWorker {
    tid: i32,
}

impl FrozenWorker {
    /// Stops the first worker lcore thread (`rte-worker-*`) of process `pid`.
    pub fn freeze(pid: i32) -> FrozenWorker {
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("tasks");
        let tid = tasks
            .filter_map(|t| t.ok())
            .filter_map(|t| t.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
            .find(|tid| {
                std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm"))
                    .is_ok_and(|c| c.starts_with("rte-worker-"))
            })
            .expect("a worker thread");
        // SAFETY: ptrace requests on a thread of our own child process; no memory is touched.
        unsafe {
            assert_eq!(libc::ptrace(libc::PTRACE_SEIZE, tid, 0, 0), 0, "seize: {}", std::io::Error::last_os_error());
            assert_eq!(libc::ptrace(libc::PTRACE_INTERRUPT, tid, 0, 0), 0, "interrupt");
            let mut status = 0;
            assert_eq!(libc::waitpid(tid, &mut status, libc::__WALL), tid, "the worker stops");
        }
        FrozenWorker { tid }
    }
}

impl Drop for FrozenWorker {
    fn drop(&mut self) {
        // SAFETY: the thread is ours and stopped under ptrace.
        unsafe { libc::ptrace(libc::PTRACE_DETACH, self.tid, 0, 0) };
    }
}

/// `Tcp:` counters of the kernel of namespace `ns` (`/proc/net/snmp` as seen from inside).
pub fn tcp_counters(ns: &str) -> std::collections::HashMap<String, u64> {
    let text = super::stdout(&run_in(ns, &["cat", "/proc/net/snmp"]));
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("Tcp:")).collect();
    let (Some(names), Some(values)) = (lines.first(), lines.get(1)) else { return Default::default() };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .skip(1)
        .map(|(n, v)| (n.to_owned(), v.parse().unwrap_or(0)))
        .collect()
}

/// Resets seen by the kernel of `ns` so far: connections reset (`EstabResets`) and resets
/// sent (`OutRsts`).
pub fn resets(ns: &str) -> (u64, u64) {
    let c = tcp_counters(ns);
    (c.get("EstabResets").copied().unwrap_or(0), c.get("OutRsts").copied().unwrap_or(0))
}

/// What long-lived connections went through.
#[derive(Debug, Default, Clone)]
pub struct Echoes {
    /// Connections open and echoing.
    pub open: usize,
    /// Lines echoed, over all connections.
    pub echoed: u64,
    /// The longest wait for an echo.
    pub longest: Duration,
    /// Errors (resets, closes, wrong echoes), one line each.
    pub errors: Vec<String>,
    /// Connections whose echo came from another backend than at first.
    pub moved: usize,
    /// Lines echoed, per connection.
    pub per_connection: Vec<u64>,
}

/// `n` TCP connections from the clients' namespace to `target`, each sending a counter line
/// every `period` and waiting for its echo (prefixed with the backend's address), all in one
/// thread over non-blocking sockets.
pub struct LongLived {
    stop: Arc<AtomicBool>,
    report: Arc<Mutex<Echoes>>,
    thread: Option<JoinHandle<()>>,
}

impl LongLived {
    pub fn start(ns: &str, target: SocketAddr, n: usize, period: Duration) -> LongLived {
        let stop = Arc::new(AtomicBool::new(false));
        let report = Arc::new(Mutex::new(Echoes::default()));
        let (s, r) = (stop.clone(), report.clone());
        let path = format!("/run/netns/{ns}");
        let thread = std::thread::spawn(move || {
            let file = std::fs::File::open(&path).expect("netns");
            // SAFETY: setns on this thread only.
            assert_eq!(unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNET) }, 0);
            echo_loop(target, n, period, &s, &r);
        });
        LongLived { stop, report, thread: Some(thread) }
    }

    pub fn report(&self) -> Echoes {
        self.report.lock().unwrap().clone()
    }

    /// Waits until every connection has echoed `lines` more lines than now (false on an error
    /// or when `within` passes first): every connection goes on, not just most.
    pub fn wait_each_echoed(&self, lines: u64, within: Duration) -> bool {
        let from = self.report().per_connection;
        super::wait_until(within, || {
            let r = self.report();
            !r.per_connection.is_empty()
                && r.errors.is_empty()
                && r.per_connection.iter().enumerate().all(|(i, &n)| n >= from.get(i).copied().unwrap_or(0) + lines)
        }) && self.report().errors.is_empty()
    }

    pub fn finish(mut self) -> Echoes {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.report()
    }
}

impl Drop for LongLived {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Conn {
    stream: TcpStream,
    counter: u64,
    sent_at: Option<Instant>,
    next: Instant,
    pending: Vec<u8>,
    backend: Option<String>,
    dead: bool,
}

fn echo_loop(target: SocketAddr, n: usize, period: Duration, stop: &AtomicBool, report: &Mutex<Echoes>) {
    let mut conns = Vec::with_capacity(n);
    for i in 0..n {
        match TcpStream::connect_timeout(&target, Duration::from_secs(3)) {
            Ok(stream) => {
                stream.set_nonblocking(true).unwrap();
                let _ = stream.set_nodelay(true);
                let start = Instant::now() + period.mul_f64(i as f64 / n as f64);
                conns.push(Conn {
                    stream,
                    counter: 0,
                    sent_at: None,
                    next: start,
                    pending: Vec::new(),
                    backend: None,
                    dead: false,
                });
            }
            Err(e) => report.lock().unwrap().errors.push(format!("connect {i}: {e}")),
        }
    }
    {
        let mut r = report.lock().unwrap();
        r.open = conns.len();
        r.per_connection = vec![0; conns.len()];
    }
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::SeqCst) {
        let now = Instant::now();
        let mut r = report.lock().unwrap();
        for (i, c) in conns.iter_mut().enumerate().filter(|(_, c)| !c.dead) {
            if c.sent_at.is_none() && now >= c.next {
                c.counter += 1;
                match c.stream.write_all(format!("{}\n", c.counter).as_bytes()) {
                    Ok(()) => c.sent_at = Some(now),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => {
                        r.errors.push(format!("connection {i}: send: {e}"));
                        c.dead = true;
                        continue;
                    }
                }
            }
            match c.stream.read(&mut buf) {
                Ok(0) => {
                    r.errors.push(format!("connection {i}: closed by the far end"));
                    c.dead = true;
                    continue;
                }
                Ok(got) => c.pending.extend_from_slice(&buf[..got]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => {
                    r.errors.push(format!("connection {i}: read: {e}"));
                    c.dead = true;
                    continue;
                }
            }
            while let Some(end) = c.pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = c.pending.drain(..=end).collect();
                let line = String::from_utf8_lossy(&line[..end]).into_owned();
                let (backend, counter) = line.split_once(' ').unwrap_or(("", ""));
                if counter != c.counter.to_string() {
                    r.errors.push(format!("connection {i}: echo {line:?} for {}", c.counter));
                    c.dead = true;
                    break;
                }
                match &c.backend {
                    None => c.backend = Some(backend.to_owned()),
                    Some(b) if b != backend => {
                        r.moved += 1;
                        c.backend = Some(backend.to_owned());
                    }
                    Some(_) => {}
                }
                if let Some(sent) = c.sent_at.take() {
                    r.longest = r.longest.max(now.saturating_duration_since(sent));
                }
                r.echoed += 1;
                r.per_connection[i] += 1;
                c.next = now + period;
            }
            if let Some(sent) = c.sent_at {
                r.longest = r.longest.max(now.saturating_duration_since(sent));
            }
        }
        drop(r);
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// UDP flows from the clients' namespace to `target`, one socket each: which backend answers
/// each flow (through `servers::udp_named_echo`).
pub struct UdpFlows {
    sockets: Vec<std::net::UdpSocket>,
    target: SocketAddr,
}

impl UdpFlows {
    pub fn open(ns: &str, target: SocketAddr, n: usize) -> UdpFlows {
        let sockets = super::in_netns(ns, move || {
            (0..n)
                .map(|_| {
                    let s = std::net::UdpSocket::bind("198.18.2.2:0").expect("bind");
                    s.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
                    s
                })
                .collect()
        });
        UdpFlows { sockets, target }
    }

    /// `rounds` datagrams on every flow, each waiting for its answer (no retry): how many were
    /// sent, and how many answered with exactly their payload.
    pub fn exchange(&self, rounds: usize) -> (u64, u64) {
        let mut buf = [0u8; 256];
        let (mut sent, mut answered) = (0, 0);
        for round in 0..rounds {
            for (i, s) in self.sockets.iter().enumerate() {
                let payload = format!("flow {i} round {round}");
                if s.send_to(payload.as_bytes(), self.target).is_err() {
                    continue;
                }
                sent += 1;
                if let Ok((n, _)) = s.recv_from(&mut buf) {
                    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                    if text.split_once(' ').is_some_and(|(_, echoed)| echoed == payload) {
                        answered += 1;
                    }
                }
            }
        }
        (sent, answered)
    }

    /// The backend that answers each flow now (a datagram is tried up to 5 times).
    pub fn backends(&self) -> Vec<Option<String>> {
        let mut buf = [0u8; 256];
        self.sockets
            .iter()
            .enumerate()
            .map(|(i, s)| {
                for attempt in 0..5 {
                    let payload = format!("flow {i} try {attempt}");
                    s.send_to(payload.as_bytes(), self.target).ok()?;
                    if let Ok((n, _)) = s.recv_from(&mut buf) {
                        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                        if let Some((backend, echoed)) = text.split_once(' ') {
                            if echoed == payload {
                                return Some(backend.to_owned());
                            }
                        }
                    }
                }
                None
            })
            .collect()
    }
}

/// Runs `f` on a thread inside namespace `ns`.
fn inside<R: Send + 'static>(ns: &str, f: impl FnOnce() -> R + Send + 'static) -> R {
    super::in_netns(ns, f)
}

/// The payload of the first UDP datagram from `src` to `dst` seen on interface `iface` of
/// namespace `ns` (within 5 s) for which `wanted` holds: a capture, to replay it.
pub fn capture_udp(
    ns: &str,
    iface: &str,
    src: SocketAddrV4,
    dst: SocketAddrV4,
    wanted: impl Fn(&[u8]) -> bool,
) -> Option<Vec<u8>> {
    let udp_payload = |frame: &[u8]| -> Option<Vec<u8>> {
        let p = frame.get(14..).filter(|_| frame.get(12..14) == Some(&[0x08, 0x00]))?;
        let ihl = usize::from(*p.first()? & 0x0f) * 4;
        let (from, to) = (Ipv4Addr::new(p[12], p[13], p[14], p[15]), Ipv4Addr::new(p[16], p[17], p[18], p[19]));
        let udp = p.get(ihl..).filter(|_| p[9] == 17 && from == *src.ip() && to == *dst.ip())?;
        let ports =
            (u16::from_be_bytes([*udp.first()?, *udp.get(1)?]), u16::from_be_bytes([*udp.get(2)?, *udp.get(3)?]));
        (ports == (src.port(), dst.port())).then(|| udp.get(8..).map(<[u8]>::to_vec)).flatten()
    };
    let capture = super::Capture::open(ns, iface);
    let frame = capture.find(Duration::from_secs(5), |f| udp_payload(f).is_some_and(|p| wanted(&p)))?;
    udp_payload(&frame)
}

/// Sends `payload` to `dst` from `src`, an address that is not the sender's own (a transparent
/// socket in namespace `ns`): a forged sender.
pub fn spoof_udp(ns: &str, src: SocketAddrV4, dst: SocketAddrV4, payload: Vec<u8>) {
    inside(ns, move || {
        let one: libc::c_int = 1;
        let ilen = std::mem::size_of::<libc::c_int>() as u32;
        let sa = |a: SocketAddrV4| libc::sockaddr_in {
            sin_family: libc::AF_INET as u16,
            sin_port: a.port().to_be(),
            sin_addr: libc::in_addr { s_addr: u32::from(*a.ip()).to_be() },
            sin_zero: [0; 8],
        };
        let (from, to) = (sa(src), sa(dst));
        let len = std::mem::size_of::<libc::sockaddr_in>() as u32;
        // SAFETY: plain system calls on a socket this closure owns and closes; every pointer is
        // to a value of the length given.
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
            assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
            libc::setsockopt(fd, libc::SOL_IP, libc::IP_TRANSPARENT, (&one as *const libc::c_int).cast(), ilen);
            libc::setsockopt(fd, libc::SOL_IP, libc::IP_FREEBIND, (&one as *const libc::c_int).cast(), ilen);
            let bound = libc::bind(fd, (&from as *const libc::sockaddr_in).cast(), len);
            assert_eq!(bound, 0, "bind {src}: {}", std::io::Error::last_os_error());
            let sent = libc::sendto(
                fd,
                payload.as_ptr().cast(),
                payload.len(),
                0,
                (&to as *const libc::sockaddr_in).cast(),
                len,
            );
            assert_eq!(sent, payload.len() as isize, "sendto: {}", std::io::Error::last_os_error());
            libc::close(fd);
        }
    })
}
