//! Shared harness for the integration tests: the namespace network of `scripts/testnet`, the
//! real `sluice` binary started in it and always stopped by PID, and sockets opened inside a
//! namespace. Everything waits by polling a condition with a deadline, never by a bare sleep.

#![allow(dead_code)]

pub mod cluster;
pub mod raw;
pub mod servers;

use std::fs::{self, File};
use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn sluice_bin() -> &'static str {
    env!("CARGO_BIN_EXE_sluice")
}

/// Polls `cond` every 50 ms until it holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn run(cmd: &str, args: &[&str]) -> Output {
    Command::new(cmd).args(args).output().unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"))
}

/// Runs a command inside namespace `ns`.
pub fn run_in(ns: &str, args: &[&str]) -> Output {
    let mut all = vec!["netns", "exec", ns];
    all.extend_from_slice(args);
    run("ip", &all)
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Runs `f` on a thread that has entered network namespace `ns`; sockets made there stay in
/// that namespace whichever thread uses them later.
pub fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
        // SAFETY: setns on a descriptor we hold open; it changes only this thread's namespace.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns({path}): {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .expect("thread in namespace panicked")
}

/// The three namespaces of `scripts/testnet`: `{name}-cli`, `{name}-lb`, `{name}-srv`.
/// Removed on drop, also when the test fails; leftovers of a crashed run are removed by `up`.
pub struct TestNet {
    pub name: String,
}

impl TestNet {
    pub fn up(name: &str, backends: u32) -> TestNet {
        let out = run(repo().join("scripts/testnet").to_str().unwrap(), &["up", name, &backends.to_string()]);
        assert!(out.status.success(), "testnet up: {}", String::from_utf8_lossy(&out.stderr));
        TestNet { name: name.to_owned() }
    }

    pub fn cli(&self) -> String {
        format!("{}-cli", self.name)
    }

    pub fn lb(&self) -> String {
        format!("{}-lb", self.name)
    }

    pub fn srv(&self) -> String {
        format!("{}-srv", self.name)
    }

    /// The namespaces of this network that exist right now.
    pub fn existing(&self) -> Vec<String> {
        let list = stdout(&run("ip", &["netns", "list"]));
        list.lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|ns| [self.cli(), self.lb(), self.srv()].contains(&ns.to_string()))
            .map(str::to_owned)
            .collect()
    }

    pub fn down(&self) {
        let _ = run(repo().join("scripts/testnet").to_str().unwrap(), &["down", &self.name]);
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        self.down();
    }
}

/// A `sluice` process in the balancer namespace, on a config written for it. Stopped by PID
/// on drop (SIGTERM, then SIGKILL after 10 s).
pub struct Sluice {
    child: Option<Child>,
    pub log: PathBuf,
    pub config: PathBuf,
    /// The API socket (each test's own).
    pub socket: PathBuf,
}

impl Sluice {
    pub fn start(net: &TestNet, config: &str) -> Sluice {
        Sluice::start_in(&net.lb(), &net.name, config)
    }

    /// The directory a Sluice started with `tag` keeps its config, log and sockets in.
    pub fn dir(tag: &str) -> PathBuf {
        std::env::temp_dir().join(format!("sluice-test-{tag}"))
    }

    /// Starts Sluice in namespace `ns`; `tag` names its directory (`dir`).
    pub fn start_in(ns: &str, tag: &str, config: &str) -> Sluice {
        Sluice::start_with_env(ns, tag, config, &[])
    }

    /// `start_in` with environment variables set for Sluice (a failpoint).
    pub fn start_with_env(ns: &str, tag: &str, config: &str, env: &[(&str, &str)]) -> Sluice {
        let dir = Sluice::dir(tag);
        fs::create_dir_all(&dir).expect("temp dir");
        let config_path = dir.join("sluice.toml");
        let socket = dir.join("sluice.sock");
        let config = with_api(config, &socket);
        fs::write(&config_path, &config).expect("write config");
        let log = dir.join("sluice.log");
        let log_file = File::create(&log).expect("log file");
        let child = Command::new("ip")
            .args(["netns", "exec", ns, sluice_bin(), "--config", config_path.to_str().unwrap()])
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("log file"))
            .stderr(log_file)
            .spawn()
            .expect("spawn sluice");
        let mut s = Sluice { child: Some(child), log, config: config_path, socket };
        let ready = wait_until(Duration::from_secs(30), || s.log_text().contains("sluice: info: ready:") || s.exited());
        assert!(ready && !s.exited(), "sluice did not become ready:\n{}", s.log_text());
        s
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).unwrap_or(-1)
    }

    pub fn log_text(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = File::open(&self.log) {
            let _ = f.read_to_string(&mut text);
        }
        text
    }

    pub fn exited(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(Some(_))))
    }

    /// SIGKILL, and the process reaped: nothing of Sluice itself runs any more.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits (at most `timeout`) for the process to end by itself; its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                self.child = None;
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Writes `config` over the running config file, sends SIGHUP and waits (10 s at most)
    /// until Sluice logs the outcome; returns the log lines that reload produced.
    pub fn reload(&self, config: &str) -> String {
        let before = self.log_text().len();
        fs::write(&self.config, with_api(config, &self.socket)).expect("write config");
        self.signal(libc::SIGHUP);
        let done = |log: &str| log.contains("reload: ") || log.contains("reload refused");
        wait_until(Duration::from_secs(10), || done(&self.log_text()[before..]));
        let log = self.log_text()[before..].to_owned();
        assert!(done(&log), "no reload outcome logged:\n{}", self.log_text());
        log
    }

    /// Runs `sluicectl --socket SOCKET ARGS...`; returns (exit code, stdout, stderr).
    pub fn ctl(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_sluicectl"))
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("run sluicectl");
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
    }

    /// `sluicectl --json ARGS...`, parsed; panics on failure.
    pub fn ctl_json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let (code, out, err) = self.ctl(&all);
        assert_eq!(code, 0, "sluicectl {args:?}: {err}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("sluicectl {args:?}: {e}: {out}"))
    }

    pub fn signal(&self, signal: i32) {
        send_signal(self.pid(), signal);
    }

    /// SIGTERM, then the exit code (None if it had to be killed after `timeout`).
    pub fn stop(&mut self, timeout: Duration) -> Option<i32> {
        let mut child = self.child.take()?;
        send_signal(child.id() as i32, libc::SIGTERM);
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }
}

impl Drop for Sluice {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(10));
    }
}

/// `config` with an `[api]` section of its own (unless it has one): tests run side by side.
pub fn with_api(config: &str, socket: &std::path::Path) -> String {
    if config.contains("[api]") {
        config.to_owned()
    } else {
        format!("{config}\n[api]\nsocket = \"{}\"\nmetrics = \"127.0.0.1:9273\"\n", socket.display())
    }
}

/// The smallest service: UDP on 198.18.0.10:53, one local IP, one backend (198.18.1.2:53).
pub const ONE_UDP_SERVICE: &str = r#"
[[service]]
name = "dns"
vip = "198.18.0.10:53"
protocol = "udp"
local_ips = ["198.18.1.100"]

[[service.backend]]
address = "198.18.1.2:53"
"#;

/// A config for `scripts/testnet`'s topology, with `services` (TOML) appended.
pub fn config(services: &str) -> String {
    testnet_config("", "[1]", 8191, services)
}

/// What Sluice's metrics endpoint (127.0.0.1:9273 in namespace `ns`) shows now.
pub fn scrape_metrics(ns: &str) -> String {
    stdout(&run_in(ns, &["curl", "-sS", "--max-time", "5", "http://127.0.0.1:9273/metrics"]))
}

/// The sum of `family`'s series in a scrape whose labels contain every one of `labels`
/// (`reason="no_session"`); 0 when there are none.
pub fn metric_sum(text: &str, family: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{family}{{")) || l.starts_with(&format!("{family} ")))
        .filter(|l| labels.iter().all(|want| l.contains(want)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A config for `scripts/testnet` with two workers, both ports opened with two queue pairs
/// (af_packet `qpairs=2`: the kernel spreads flows over the queues by a hash Sluice cannot
/// predict), with `services` (TOML) appended.
pub fn two_worker_config(services: &str) -> String {
    testnet_config(",qpairs=2", "[1, 0]", 16383, services)
}

/// The testnet config: af_packet ports with `port_options`, `workers`, `mbufs`, `services`.
fn testnet_config(port_options: &str, workers: &str, mbufs: u32, services: &str) -> String {
    format!(
        r#"
[dpdk]
args = ["--no-pci", "--vdev=net_af_packet0,iface=lb0{port_options}", "--vdev=net_af_packet1,iface=lb1{port_options}"]
hugepages = false
mbufs = {mbufs}

[cpu]
control = 0
workers = {workers}
idle = "adaptive"

[[interface]]
name = "wan"
device = "net_af_packet0"
addresses = ["198.18.0.1/24"]

[[interface]]
name = "lan"
device = "net_af_packet1"
addresses = ["198.18.1.1/24"]
{services}
"#
    )
}

pub fn write_temp(name: &str, text: &str) -> PathBuf {
    let path = std::env::temp_dir().join(name);
    fs::write(&path, text).expect("write temp file");
    path
}

/// The count of drop `reason` in the "data path drops:" line Sluice logs when it stops.
pub fn logged_drops(log: &str, reason: &str) -> Option<u64> {
    let line = log.lines().rev().find(|l| l.contains("data path drops:"))?;
    let list = line.split("data path drops:").nth(1)?;
    list.split(',').find_map(|item| {
        let mut words = item.split_whitespace();
        (words.next()? == reason).then(|| words.next()?.parse().ok())?
    })
}

/// A packet socket on interface `iface` of a namespace: every frame it carries, seen from the
/// moment `open` returns (so that what a process does right at start is caught). Closed on drop.
pub struct Capture {
    fd: std::os::fd::OwnedFd,
}

impl Capture {
    pub fn open(ns: &str, iface: &str) -> Capture {
        let iface = std::ffi::CString::new(iface).unwrap();
        let fd = in_netns(ns, move || {
            // SAFETY: plain system calls; the descriptor is owned by the returned value.
            unsafe {
                let proto = (libc::ETH_P_ALL as u16).to_be();
                let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(proto));
                assert!(fd >= 0, "packet socket: {}", std::io::Error::last_os_error());
                let mut addr: libc::sockaddr_ll = std::mem::zeroed();
                addr.sll_family = libc::AF_PACKET as u16;
                addr.sll_protocol = proto;
                addr.sll_ifindex = libc::if_nametoindex(iface.as_ptr()) as i32;
                assert!(addr.sll_ifindex > 0, "no interface {iface:?}");
                let len = std::mem::size_of::<libc::sockaddr_ll>() as u32;
                assert_eq!(libc::bind(fd, (&addr as *const libc::sockaddr_ll).cast(), len), 0);
                let timeout = libc::timeval { tv_sec: 0, tv_usec: 100_000 };
                let tlen = std::mem::size_of::<libc::timeval>() as u32;
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_RCVTIMEO,
                    (&timeout as *const libc::timeval).cast(),
                    tlen,
                );
                <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd)
            }
        });
        Capture { fd }
    }

    /// Sends `frame` (Ethernet header first) out of the interface; `false` if refused.
    pub fn send(&self, frame: &[u8]) -> bool {
        // SAFETY: send of a buffer of the length given, on our own bound socket.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        n == frame.len() as isize
    }

    /// The next frame (Ethernet header first) for which `wanted` holds, within `within`.
    pub fn find(&self, within: Duration, wanted: impl Fn(&[u8]) -> bool) -> Option<Vec<u8>> {
        let deadline = Instant::now() + within;
        let mut buf = [0u8; 2048];
        while Instant::now() < deadline {
            // SAFETY: recv into a buffer of the length given, on our own socket.
            let n = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n > 0 && wanted(&buf[..n as usize]) {
                return Some(buf[..n as usize].to_vec());
            }
        }
        None
    }
}

/// Sends `signal` to process `pid` (one this test started); a process already gone is fine.
pub fn send_signal(pid: i32, signal: i32) {
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    unsafe { libc::kill(pid, signal) };
}
