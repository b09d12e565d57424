//! The cluster network of `scripts/clusternet` (a router running BIRD with ECMP, one-armed
//! Sluice nodes, clients and backends behind the router), node configs for it, and what the
//! tests read off the router.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
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

/// Node `k`'s config: one-armed on `wan`, BGP to the router with BFD, one TCP service on the
/// VIP port 80 over `backends` HTTP backends (198.18.1.2 on), checked by TCP; `extra` is
/// appended to the `[bgp]` section.
pub fn node_config(net: &ClusterNet, k: u32, backends: u32, bgp_extra: &str) -> String {
    let runtime = Sluice::dir(&net.tag(k)).join("bird");
    let mut text = format!(
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

[[service]]
name = "web"
vip = "{VIP}:80"
protocol = "tcp"
local_ips = ["198.18.12.{k}"]

[service.health]
check = "tcp"
interval = "200ms"
timeout = "150ms"
rise = 2
fall = 2
"#,
        address = node_address(k),
        runtime = runtime.display(),
    );
    for i in 0..backends {
        text.push_str(&format!("\n[[service.backend]]\naddress = \"198.18.1.{}:80\"\n", 2 + i));
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
