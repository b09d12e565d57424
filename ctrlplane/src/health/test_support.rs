//! Loopback backends for the health tests, and a bounded loop that polls a `Checker` until a
//! condition holds. Everything binds 127.0.0.1 on an ephemeral port; every thread stops
//! when its handle is dropped.

use std::io::{Read, Write};
use std::mem;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::{CheckSpec, Checker, Target, Transition};
use crate::config::CheckKind;

/// How long each poll of the test loops waits at most.
const STEP: Duration = Duration::from_millis(10);

pub(super) fn spec(kind: CheckKind, interval_ms: u64, timeout_ms: u64, rise: u32, fall: u32) -> CheckSpec {
    CheckSpec {
        kind,
        interval: Duration::from_millis(interval_ms),
        timeout: Duration::from_millis(timeout_ms),
        rise,
        fall,
        send: String::new(),
        expect: String::new(),
        preamble: Vec::new(),
    }
}

pub(super) fn target(service: &str, backend: SocketAddrV4, spec: &CheckSpec) -> Target {
    Target { service: service.to_owned(), backend, spec: spec.clone() }
}

/// Polls `checker` until `done` holds or `within` has passed; returns every transition seen
/// and whether `done` held.
pub(super) fn run_until(
    checker: &mut Checker,
    within: Duration,
    mut done: impl FnMut(&Checker, &[Transition]) -> bool,
) -> (Vec<Transition>, bool) {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    loop {
        seen.extend(checker.poll(STEP));
        if done(checker, &seen) {
            return (seen, true);
        }
        if Instant::now() >= deadline {
            return (seen, false);
        }
    }
}

/// (up, ok, failed) of the target for `backend`.
pub(super) fn state(checker: &Checker, backend: SocketAddrV4) -> (bool, u64, u64) {
    checker
        .states()
        .find(|state| state.1 == backend)
        .map(|(_, _, up, ok, failed)| (up, ok, failed))
        .expect("a target for this backend")
}

fn v4(address: SocketAddr) -> SocketAddrV4 {
    match address {
        SocketAddr::V4(address) => address,
        SocketAddr::V6(_) => panic!("bound 127.0.0.1"),
    }
}

/// A loopback tcp listener that never accepts: the kernel completes handshakes for it.
pub(super) fn listener() -> (TcpListener, SocketAddrV4) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let address = v4(listener.local_addr().unwrap());
    (listener, address)
}

/// A loopback tcp port held by a socket that is bound but never listens: connections to it
/// are refused for as long as the socket lives, and, unlike a port bound once and closed, no
/// other socket (another test's ephemeral port, a checker's own source port) can take it
/// meanwhile and answer.
pub(super) fn refusing() -> (OwnedFd, SocketAddrV4) {
    // SAFETY: socket(2) takes only integers; it returns a new descriptor or -1 (checked).
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
    // SAFETY: a fresh descriptor that nothing else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: all zeroes is a valid `sockaddr_in`; family and address are set below.
    let mut address: libc::sockaddr_in = unsafe { mem::zeroed() };
    address.sin_family = libc::AF_INET as libc::sa_family_t;
    address.sin_addr = libc::in_addr { s_addr: u32::from(Ipv4Addr::LOCALHOST).to_be() };
    let mut len = mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: `address` is a valid `sockaddr_in` of `len` bytes, alive for both calls, and
    // getsockname writes at most `len` bytes into it.
    unsafe {
        let at = (&mut address as *mut libc::sockaddr_in).cast();
        assert_eq!(libc::bind(fd, at, len), 0, "bind: {}", std::io::Error::last_os_error());
        assert_eq!(libc::getsockname(fd, at, &mut len), 0, "getsockname: {}", std::io::Error::last_os_error());
    }
    (socket, SocketAddrV4::new(Ipv4Addr::LOCALHOST, u16::from_be(address.sin_port)))
}

/// A loopback udp port that nothing is bound to: datagrams to it draw a port unreachable.
pub(super) fn closed_udp_port() -> SocketAddrV4 {
    v4(UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap())
}

/// Answers each datagram with `reply`, or stays silent while `reply` is `None`.
pub(super) struct UdpResponder {
    pub(super) address: SocketAddrV4,
    reply: Arc<Mutex<Option<Vec<u8>>>>,
    /// The last datagram received.
    pub(super) last: Arc<Mutex<Vec<u8>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl UdpResponder {
    pub(super) fn start(reply: &[u8]) -> UdpResponder {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        // Bounds each wait so that the thread sees `stop` soon.
        socket.set_read_timeout(Some(STEP)).unwrap();
        let address = v4(socket.local_addr().unwrap());
        let reply = Arc::new(Mutex::new(Some(reply.to_vec())));
        let last = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (answer, seen, halt) = (reply.clone(), last.clone(), stop.clone());
        let thread = thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !halt.load(Ordering::Relaxed) {
                let Ok((n, peer)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                *seen.lock().unwrap() = buf[..n].to_vec();
                if let Some(reply) = answer.lock().unwrap().as_ref() {
                    let _ = socket.send_to(reply, peer);
                }
            }
        });
        UdpResponder { address, reply, last, stop, thread: Some(thread) }
    }

    pub(super) fn set_reply(&self, reply: Option<&[u8]>) {
        *self.reply.lock().unwrap() = reply.map(<[u8]>::to_vec);
    }
}

impl Drop for UdpResponder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// How the http responder answers.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum HttpMode {
    /// `HTTP/1.0 <code> ...` once the request has been read.
    Status(u16),
    /// These bytes, whatever they are, then close.
    Raw(Vec<u8>),
    /// Accepts and holds the connection, never answering.
    Silent,
}

/// A tiny http server on loopback that serves one connection at a time.
pub(super) struct HttpResponder {
    pub(super) address: SocketAddrV4,
    mode: Arc<Mutex<HttpMode>>,
    /// The last request read.
    pub(super) last: Arc<Mutex<Vec<u8>>>,
    pub(super) accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl HttpResponder {
    pub(super) fn start(mode: HttpMode) -> HttpResponder {
        let (listener, address) = listener();
        let mode = Arc::new(Mutex::new(mode));
        let last = Arc::new(Mutex::new(Vec::new()));
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (how, seen, count, halt) = (mode.clone(), last.clone(), accepted.clone(), stop.clone());
        let thread = thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming() {
                if halt.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                count.fetch_add(1, Ordering::Relaxed);
                let mode = how.lock().unwrap().clone();
                match mode {
                    HttpMode::Silent => held.push(stream),
                    HttpMode::Status(code) => {
                        let answer = format!("HTTP/1.0 {code} Whatever\r\nContent-Length: 0\r\n\r\n");
                        serve(stream, answer.as_bytes(), &seen);
                    }
                    HttpMode::Raw(bytes) => serve(stream, &bytes, &seen),
                }
            }
        });
        HttpResponder { address, mode, last, accepted, stop, thread: Some(thread) }
    }

    pub(super) fn set_mode(&self, mode: HttpMode) {
        *self.mode.lock().unwrap() = mode;
    }
}

/// Reads the request up to its blank line (bounded in size and time), then answers.
fn serve(mut stream: TcpStream, answer: &[u8], last: &Mutex<Vec<u8>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let mut request = Vec::new();
    let mut buf = [0u8; 512];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 8192 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    *last.lock().unwrap() = request;
    let _ = stream.write_all(answer);
}

impl Drop for HttpResponder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the accept so that the thread sees `stop`.
        let _ = TcpStream::connect(self.address);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
