//! Real kernel servers for the integration tests, opened inside a namespace: UDP echo and a
//! minimal HTTP/1.1 server. Each counts what it served and stops when dropped (its threads
//! poll a stop flag with short socket timeouts, so no test waits on a blocked accept).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::in_netns;

/// Servers on several addresses; `served[i]` counts requests (datagrams or HTTP requests) at
/// `addrs[i]`, `peers` records the source address of the last one seen by each.
pub struct Servers {
    pub addrs: Vec<SocketAddr>,
    pub served: Vec<Arc<AtomicU64>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Servers {
    pub fn count(&self, i: usize) -> u64 {
        self.served[i].load(Ordering::SeqCst)
    }

    pub fn counts(&self) -> Vec<u64> {
        (0..self.served.len()).map(|i| self.count(i)).collect()
    }

    pub fn total(&self) -> u64 {
        self.counts().iter().sum()
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

const POLL: Duration = Duration::from_millis(100);

/// UDP echo: every datagram goes back to its sender unchanged.
pub fn udp_echo(ns: &str, addrs: &[&str]) -> Servers {
    udp_servers(ns, addrs, |_, datagram| datagram.to_vec())
}

/// UDP echo that names itself: every datagram goes back prefixed with the server's address
/// and a space, so that a client sees which backend answered.
pub fn udp_named_echo(ns: &str, addrs: &[&str]) -> Servers {
    udp_servers(ns, addrs, |me, datagram| [format!("{} ", me.ip()).as_bytes(), datagram].concat())
}

/// UDP servers that require the PROXY protocol v2 header on every datagram, as a server with
/// the protocol enabled does: each answers "CLIENT:PORT PAYLOAD" for a PROXY header (the client
/// it names), "local PAYLOAD" for a LOCAL one (a health check), "none PAYLOAD" without one;
/// a payload over 512 bytes is answered by its length ("CLIENT:PORT 1472 bytes"), so that the
/// answer fits one unfragmented datagram.
pub fn udp_proxy_echo(ns: &str, addrs: &[&str]) -> Servers {
    udp_servers(ns, addrs, |_, datagram| {
        use dataplane::wire::proxy::{parse, Header};
        let (who, payload) = match parse(datagram) {
            Ok((Header::Proxy { client: (ip, port), .. }, at)) => (format!("{ip}:{port}"), &datagram[at..]),
            Ok((Header::Local, at)) => ("local".to_owned(), &datagram[at..]),
            Err(_) => ("none".to_owned(), datagram),
        };
        if payload.len() > 512 {
            format!("{who} {} bytes", payload.len()).into_bytes()
        } else {
            [format!("{who} ").as_bytes(), payload].concat()
        }
    })
}

/// UDP servers on `addrs`, each answering every datagram with `answer(own address, datagram)`;
/// `served[i]` counts datagrams.
fn udp_servers(ns: &str, addrs: &[&str], answer: fn(SocketAddr, &[u8]) -> Vec<u8>) -> Servers {
    let stop = Arc::new(AtomicBool::new(false));
    let mut servers = Servers { addrs: Vec::new(), served: Vec::new(), stop: stop.clone(), threads: Vec::new() };
    for addr in addrs {
        let addr: SocketAddr = addr.parse().expect("server address");
        let socket = in_netns(ns, move || UdpSocket::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}")));
        socket.set_read_timeout(Some(POLL)).unwrap();
        let served = Arc::new(AtomicU64::new(0));
        let (stop, count) = (stop.clone(), served.clone());
        servers.threads.push(std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::SeqCst) {
                if let Ok((n, peer)) = socket.recv_from(&mut buf) {
                    count.fetch_add(1, Ordering::SeqCst);
                    let _ = socket.send_to(&answer(addr, &buf[..n]), peer);
                }
            }
        }));
        servers.addrs.push(addr);
        servers.served.push(served);
    }
    servers
}

/// TCP servers that require the PROXY protocol v2 header first, and speak first themselves
/// (as SMTP does): once the header is in, each greets "220 CLIENT:PORT\r\n" ("220 local\r\n"
/// for a LOCAL header, a health check), then reads everything the client sends and, at its
/// end, answers the sha256 of it (hex, a line) and closes. Without a header: "no header\r\n".
pub fn tcp_proxy_greeter(ns: &str, addrs: &[&str]) -> Servers {
    tcp_servers(ns, addrs, |mut conn, _addr, _stop| {
        use dataplane::wire::proxy::{parse, Header, LOCAL_LEN};
        use sha2::{Digest, Sha256};
        conn.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut head = [0u8; 64];
        if conn.read_exact(&mut head[..LOCAL_LEN]).is_err() {
            return;
        }
        let extra = usize::from(u16::from_be_bytes([head[14], head[15]])).min(head.len() - LOCAL_LEN);
        if conn.read_exact(&mut head[LOCAL_LEN..LOCAL_LEN + extra]).is_err() {
            return;
        }
        let greeting = match parse(&head[..LOCAL_LEN + extra]) {
            Ok((Header::Proxy { client: (ip, port), .. }, _)) => format!("220 {ip}:{port}\r\n"),
            Ok((Header::Local, _)) => "220 local\r\n".to_owned(),
            Err(_) => {
                let _ = conn.write_all(b"no header\r\n");
                return;
            }
        };
        if conn.write_all(greeting.as_bytes()).is_err() {
            return;
        }
        let mut hash = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match conn.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => hash.update(&buf[..n]),
                Err(_) => return,
            }
        }
        let hex: String = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
        let _ = conn.write_all(format!("{hex}\n").as_bytes());
    })
}

/// A daemon from a Debian package (nginx, HAProxy) in a namespace, in the foreground; stopped
/// by its PID when dropped (SIGTERM, then SIGKILL).
pub struct Daemon {
    child: std::process::Child,
}

impl Daemon {
    pub fn start(ns: &str, args: &[&str], log: &std::path::Path) -> Daemon {
        let out = std::fs::File::create(log).expect("daemon log");
        let child = std::process::Command::new("ip")
            .args(["netns", "exec", ns])
            .args(args)
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("start {args:?}: {e}"));
        Daemon { child }
    }

    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let pid = self.child.id() as i32;
        super::send_signal(pid, libc::SIGTERM);
        let gone = super::wait_until(Duration::from_secs(5), || matches!(self.child.try_wait(), Ok(Some(_))));
        if !gone {
            super::send_signal(pid, libc::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

/// HTTP: `GET /` answers "backend ADDRESS\n"; `GET /big` streams `big_file` if given.
pub fn http(ns: &str, addrs: &[&str], big_file: Option<PathBuf>) -> Servers {
    tcp_servers(ns, addrs, move |conn, addr, _stop| serve_http(conn, &format!("backend {addr}\n"), big_file.clone()))
}

/// TCP listeners on `addrs`, each connection served by `serve` on a thread of its own;
/// `served[i]` counts connections.
fn tcp_servers<F>(ns: &str, addrs: &[&str], serve: F) -> Servers
where
    F: Fn(TcpStream, SocketAddr, &AtomicBool) + Clone + Send + 'static,
{
    let stop = Arc::new(AtomicBool::new(false));
    let mut servers = Servers { addrs: Vec::new(), served: Vec::new(), stop: stop.clone(), threads: Vec::new() };
    for addr in addrs {
        let addr: SocketAddr = addr.parse().expect("server address");
        let listener = in_netns(ns, move || TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}")));
        listener.set_nonblocking(true).unwrap();
        let served = Arc::new(AtomicU64::new(0));
        let (stop, count, serve) = (stop.clone(), served.clone(), serve.clone());
        servers.threads.push(std::thread::spawn(move || {
            let mut conns = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        count.fetch_add(1, Ordering::SeqCst);
                        let (stop, serve) = (stop.clone(), serve.clone());
                        conns.push(std::thread::spawn(move || serve(conn, addr, &stop)));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
            for c in conns {
                let _ = c.join();
            }
        }));
        servers.addrs.push(addr);
        servers.served.push(served);
    }
    servers
}

fn serve_http(mut conn: TcpStream, body: &str, big: Option<PathBuf>) {
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = conn.set_write_timeout(Some(Duration::from_secs(60)));
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16384 {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let wants_big = request.starts_with(b"GET /big ");
    match (wants_big, big) {
        (true, Some(path)) => {
            let Ok(mut file) = std::fs::File::open(&path) else { return };
            let len = file.metadata().map(|m| m.len()).unwrap_or(0);
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n");
            if conn.write_all(head.as_bytes()).is_ok() {
                let _ = std::io::copy(&mut file, &mut conn);
            }
        }
        _ => {
            let reply = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = conn.write_all(reply.as_bytes());
        }
    }
    let _ = conn.shutdown(std::net::Shutdown::Write);
    // Drain until the client closes, so that our FIN is not followed by an RST.
    let _ = conn.read(&mut buf);
}

/// TCP line echo: every line comes back prefixed with the server's address and a space.
/// `served[i]` counts connections.
pub fn tcp_echo(ns: &str, addrs: &[&str]) -> Servers {
    tcp_servers(ns, addrs, echo_lines)
}

fn echo_lines(mut conn: TcpStream, me: SocketAddr, stop: &AtomicBool) {
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(POLL));
    let mut pending = Vec::new();
    let mut buf = [0u8; 1024];
    while !stop.load(Ordering::SeqCst) {
        match conn.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => pending.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => continue,
            Err(_) => return,
        }
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let reply = format!("{} {}", me.ip(), String::from_utf8_lossy(&line));
            if conn.write_all(reply.as_bytes()).is_err() {
                return;
            }
        }
    }
}

/// A UDP echo server on one address that answers a health check "ping" with "pong" and counts
/// only the other datagrams. Stops when dropped; start it again to bring the backend back.
pub struct UdpBackend {
    pub served: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl UdpBackend {
    pub fn start(ns: &str, addr: &str) -> UdpBackend {
        let addr: SocketAddr = addr.parse().expect("server address");
        let socket = in_netns(ns, move || UdpSocket::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}")));
        socket.set_read_timeout(Some(POLL)).unwrap();
        let (stop, served) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
        let (s, c) = (stop.clone(), served.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !s.load(Ordering::SeqCst) {
                if let Ok((n, peer)) = socket.recv_from(&mut buf) {
                    if &buf[..n] == b"ping" {
                        let _ = socket.send_to(b"pong", peer);
                    } else {
                        c.fetch_add(1, Ordering::SeqCst);
                        let _ = socket.send_to(&buf[..n], peer);
                    }
                }
            }
        });
        UdpBackend { served, stop, thread: Some(thread) }
    }

    pub fn count(&self) -> u64 {
        self.served.load(Ordering::SeqCst)
    }
}

impl Drop for UdpBackend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A TCP server on one address that answers every connection according to `mode`: an HTTP
/// response with `status`, or (status 0) nothing at all, holding the connection open.
pub struct TcpBackend {
    pub accepted: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TcpBackend {
    pub fn start(ns: &str, addr: &str, status: u16) -> TcpBackend {
        let addr: SocketAddr = addr.parse().expect("server address");
        let listener = in_netns(ns, move || TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}")));
        listener.set_nonblocking(true).unwrap();
        let (stop, accepted) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
        let (s, c) = (stop.clone(), accepted.clone());
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((mut conn, _)) => {
                        c.fetch_add(1, Ordering::SeqCst);
                        if status == 0 {
                            held.push(conn); // never answered
                            continue;
                        }
                        let _ = conn.set_nonblocking(false);
                        let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
                        let mut buf = [0u8; 2048];
                        let _ = conn.read(&mut buf);
                        let body = format!("backend {addr}\n");
                        let reply = format!("HTTP/1.0 {status} X\r\nContent-Length: {}\r\n\r\n{body}", body.len());
                        let _ = conn.write_all(reply.as_bytes());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        TcpBackend { accepted, stop, thread: Some(thread) }
    }
}

impl Drop for TcpBackend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
