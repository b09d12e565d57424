//! One check in flight: a non-blocking socket, the stage it has reached and its deadline.
//!
//! A probe never waits: `start` and `advance` do what the socket allows now and say whether
//! the check is over. The `Checker` owns the waiting (one `poll` for every probe) and the
//! deadline. Reads are bounded by `MAX_REPLY`; a reply is judged by its first bytes only.
//!
//! TCP sockets are closed with a reset (`SO_LINGER` 0), as load-balancer checks commonly do:
//! an orderly close would leave a `TIME_WAIT` socket behind per check, tens of thousands at
//! hundreds of backends checked every second.

use std::io::{self, Read};
use std::mem;
use std::net::{SocketAddrV4, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Instant;

use super::http::{self, StatusLine};
use super::tally::Outcome;
use super::{CheckSpec, MAX_REPLY};
use crate::api::poller;
use crate::config::CheckKind;

pub(super) struct Probe {
    /// When the check counts as failed if it has not ended.
    pub(super) deadline: Instant,
    stage: Stage,
}

enum Stage {
    /// tcp and http: the handshake is under way; the socket turns writable when it ends.
    Connecting(TcpStream),
    /// http: the request, of which `sent` bytes are written.
    Sending { stream: TcpStream, request: Vec<u8>, sent: usize },
    /// http: the reply read so far, until its first line ends.
    Receiving { stream: TcpStream, reply: Vec<u8> },
    /// udp: the datagram is out; waiting for the answer.
    Awaiting(UdpSocket),
}

/// Where a check stands after a step.
pub(super) enum Step {
    Pending(Probe),
    Done(Outcome),
}

impl Probe {
    /// Opens the socket and goes as far as it can without waiting.
    pub(super) fn start(spec: &CheckSpec, backend: SocketAddrV4, now: Instant) -> Step {
        let deadline = now + spec.timeout;
        match spec.kind {
            CheckKind::Udp => match open(libc::SOCK_DGRAM, backend) {
                Ok((socket, _)) => {
                    let socket = UdpSocket::from(socket);
                    let datagram = [spec.preamble.as_slice(), spec.send.as_bytes()].concat();
                    match poller::send(&socket, &datagram) {
                        Ok(_) => Step::Pending(Probe { deadline, stage: Stage::Awaiting(socket) }),
                        Err(error) => Step::Done(Err(describe_udp(&error))),
                    }
                }
                Err(error) => Step::Done(Err(describe_udp(&error))),
            },
            // `None` never becomes a target; checking it as tcp is the harmless reading.
            CheckKind::Tcp | CheckKind::Http | CheckKind::None => match open(libc::SOCK_STREAM, backend) {
                Ok((socket, connected)) => {
                    abort_on_close(socket.as_raw_fd());
                    let probe = Probe { deadline, stage: Stage::Connecting(TcpStream::from(socket)) };
                    if connected {
                        probe.connected(spec, backend)
                    } else {
                        Step::Pending(probe)
                    }
                }
                Err(error) => Step::Done(Err(describe(&error))),
            },
        }
    }

    /// What `poll` should wait for on this probe's socket.
    pub(super) fn interest(&self) -> libc::pollfd {
        match &self.stage {
            Stage::Connecting(stream) | Stage::Sending { stream, .. } => {
                poller::interest(stream.as_raw_fd(), false, true)
            }
            Stage::Receiving { stream, .. } => poller::interest(stream.as_raw_fd(), true, false),
            Stage::Awaiting(socket) => poller::interest(socket.as_raw_fd(), true, false),
        }
    }

    /// Goes on after `poll` reported the socket ready (or in error, or hung up).
    pub(super) fn advance(self, spec: &CheckSpec, backend: SocketAddrV4) -> Step {
        match self.stage {
            Stage::Connecting(ref stream) => match stream.take_error() {
                Ok(None) => self.connected(spec, backend),
                Ok(Some(error)) | Err(error) => Step::Done(Err(describe(&error))),
            },
            Stage::Sending { stream, request, sent } => send(self.deadline, stream, request, sent),
            Stage::Receiving { stream, reply } => receive(self.deadline, stream, reply, spec),
            Stage::Awaiting(socket) => answer(self.deadline, socket, spec),
        }
    }

    /// The handshake is done: a tcp check has passed, an http check sends its request.
    fn connected(self, spec: &CheckSpec, backend: SocketAddrV4) -> Step {
        match self.stage {
            Stage::Connecting(stream) if spec.kind == CheckKind::Http => {
                let request = [spec.preamble.clone(), http::request(&spec.send, backend)].concat();
                send(self.deadline, stream, request, 0)
            }
            // A fresh connection's send buffer takes a preamble of a few bytes whole.
            Stage::Connecting(stream) if !spec.preamble.is_empty() => match poller::send(&stream, &spec.preamble) {
                Ok(n) if n == spec.preamble.len() => Step::Done(Ok(())),
                Ok(_) => Step::Done(Err("the PROXY header did not go out whole".to_owned())),
                Err(error) => Step::Done(Err(describe(&error))),
            },
            _ => Step::Done(Ok(())),
        }
    }
}

/// http: writes what the socket takes of the request; reads the reply once it is all out.
fn send(deadline: Instant, stream: TcpStream, request: Vec<u8>, mut sent: usize) -> Step {
    while sent < request.len() {
        match poller::send(&stream, &request[sent..]) {
            Ok(0) => return Step::Done(Err("connection closed".to_owned())),
            Ok(n) => sent += n,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                let stage = Stage::Sending { stream, request, sent };
                return Step::Pending(Probe { deadline, stage });
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Step::Done(Err(describe(&error))),
        }
    }
    let stage = Stage::Receiving { stream, reply: Vec::new() };
    Step::Pending(Probe { deadline, stage })
}

/// http: reads until the status line is complete, then compares its code with `expect`.
fn receive(deadline: Instant, mut stream: TcpStream, mut reply: Vec<u8>, spec: &CheckSpec) -> Step {
    let mut chunk = [0u8; 1024];
    loop {
        let room = (MAX_REPLY - reply.len()).min(chunk.len());
        let closed = match stream.read(&mut chunk[..room]) {
            Ok(0) => true,
            Ok(n) => {
                reply.extend_from_slice(&chunk[..n]);
                false
            }
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                let stage = Stage::Receiving { stream, reply };
                return Step::Pending(Probe { deadline, stage });
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Step::Done(Err(describe(&error))),
        };
        if closed && reply.is_empty() {
            return Step::Done(Err("connection closed without reply".to_owned()));
        }
        // A first line that fills the whole buffer is not a status line.
        let finished = closed || reply.len() >= MAX_REPLY;
        match http::status_line(&reply, finished) {
            StatusLine::Incomplete => {}
            StatusLine::Malformed => return Step::Done(Err("malformed status line".to_owned())),
            StatusLine::Status(code) if code[..] == *spec.expect.trim().as_bytes() => return Step::Done(Ok(())),
            StatusLine::Status(code) => return Step::Done(Err(format!("status {}", String::from_utf8_lossy(&code)))),
        }
    }
}

/// udp: one datagram back, which must start with `expect`.
fn answer(deadline: Instant, socket: UdpSocket, spec: &CheckSpec) -> Step {
    let mut reply = [0u8; MAX_REPLY];
    loop {
        return match socket.recv(&mut reply) {
            Ok(n) if reply[..n].starts_with(spec.expect.as_bytes()) => Step::Done(Ok(())),
            Ok(_) => Step::Done(Err("unexpected reply".to_owned())),
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                Step::Pending(Probe { deadline, stage: Stage::Awaiting(socket) })
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => Step::Done(Err(describe_udp(&error))),
        };
    }
}

/// A non-blocking socket of `kind` connecting to `backend`; `true` when the connection is
/// already made (always for udp, sometimes for tcp on loopback). The kernel picks the
/// source address and port, as routing to the backend says.
fn open(kind: libc::c_int, backend: SocketAddrV4) -> io::Result<(OwnedFd, bool)> {
    // SAFETY: socket(2) takes only integer arguments and touches no memory of ours; it returns
    // a new descriptor or -1 (checked below).
    let fd = unsafe { libc::socket(libc::AF_INET, kind | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is non-negative (checked above) and a fresh descriptor that nothing else owns
    // or closes, so the `OwnedFd` is its only owner.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: all zeroes is a valid `sockaddr_in`; the fields that matter are set below.
    let mut address: libc::sockaddr_in = unsafe { mem::zeroed() };
    address.sin_family = libc::AF_INET as libc::sa_family_t;
    address.sin_port = backend.port().to_be();
    address.sin_addr = libc::in_addr { s_addr: u32::from(*backend.ip()).to_be() };
    // SAFETY: `address` is a valid `sockaddr_in` of the length given, alive for the call.
    let rc = unsafe {
        libc::connect(
            fd,
            (&address as *const libc::sockaddr_in).cast(),
            mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        return Ok((socket, true));
    }
    let error = io::Error::last_os_error();
    match error.raw_os_error() {
        // An interrupted non-blocking connect goes on in the background, like EINPROGRESS.
        Some(libc::EINPROGRESS) | Some(libc::EINTR) => Ok((socket, false)),
        _ => Err(error),
    }
}

/// Close with a reset rather than a FIN (see the module comment). Best effort: a socket
/// that refuses merely leaves a `TIME_WAIT` behind.
fn abort_on_close(fd: RawFd) {
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: `linger` is valid for the length given; `fd` is an open socket.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

/// A short reason for a failed connection: "connection refused", "host unreachable", ...
pub(super) fn describe(error: &io::Error) -> String {
    let known = match error.raw_os_error() {
        Some(libc::ECONNREFUSED) => "connection refused",
        Some(libc::ECONNRESET) => "connection reset",
        Some(libc::EHOSTUNREACH) => "host unreachable",
        Some(libc::ENETUNREACH) => "network unreachable",
        Some(libc::ETIMEDOUT) => "connection timed out",
        Some(libc::EPIPE) => "connection closed",
        _ => {
            // "Permission denied (os error 13)" becomes "permission denied".
            let text = error.to_string();
            let text = text.split(" (os error").next().unwrap_or_default();
            return text.to_lowercase();
        }
    };
    known.to_owned()
}

/// As `describe`, but a refused datagram means an ICMP port unreachable came back.
fn describe_udp(error: &io::Error) -> String {
    if error.raw_os_error() == Some(libc::ECONNREFUSED) {
        "port unreachable".to_owned()
    } else {
        describe(error)
    }
}
