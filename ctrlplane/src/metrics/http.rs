//! A tiny HTTP/1.1 server for Prometheus scrapes (`[api] metrics`): `GET /metrics` and
//! nothing else.
//!
//! Like the API server it is polled from the housekeeping loop and never blocks on a peer:
//! every connection is non-blocking with its own state; a request must arrive whole within
//! `READ_DEADLINE` and within `MAX_REQUEST` bytes; the reply is buffered and sent as the
//! socket takes it, within `WRITE_DEADLINE`; every reply says `Connection: close` and the
//! connection ends after it. At most `MAX_CONNECTIONS` at once: one more is closed at once.
//!
//! Replies: `GET /metrics` (or `HEAD`) 200 with the exposition; another path 404; another
//! method 405; a request that is not HTTP/1.x 400; too large 431; too slow 408.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use super::render::CONTENT_TYPE;
use crate::api::poller;

/// Most bytes of a request (request line and headers).
pub const MAX_REQUEST: usize = 8 * 1024;
/// Time from accepting a connection to having its whole request.
pub const READ_DEADLINE: Duration = Duration::from_secs(5);
/// Time to send a reply once it is ready.
pub const WRITE_DEADLINE: Duration = Duration::from_secs(30);
/// After the reply, how long to wait for the peer to close before closing anyway.
const LINGER: Duration = Duration::from_secs(2);
/// Most connections at once.
pub const MAX_CONNECTIONS: usize = 16;

/// The listening metrics socket and its connections.
#[derive(Debug)]
pub struct MetricsServer {
    listener: TcpListener,
    connections: Vec<Connection>,
}

#[derive(Debug)]
struct Connection {
    stream: TcpStream,
    phase: Phase,
    /// When the current phase must be over.
    deadline: Instant,
}

#[derive(Debug)]
enum Phase {
    /// Until the request's headers are complete.
    Reading { request: Vec<u8> },
    /// The reply, `sent` bytes of it gone.
    Writing { reply: Vec<u8>, sent: usize },
    /// Reply sent and our side shut: what the peer still sends is read and dropped until it
    /// closes, so that closing with unread data does not reset the connection under the
    /// reply (the peer sent a body, or more than `MAX_REQUEST`).
    Lingering,
}

impl MetricsServer {
    /// Listens on `addr` (port 0: any free port, see `local_addr`).
    pub fn bind(addr: SocketAddr) -> io::Result<MetricsServer> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        Ok(MetricsServer { listener, connections: Vec::new() })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// How many connections are open.
    pub fn connections(&self) -> usize {
        self.connections.len()
    }

    /// Accepts scrapers and serves each as far as its socket allows, calling `render` once per
    /// `GET /metrics`, waiting at most `wait`. Errors are the listener's only.
    pub fn poll(&mut self, render: &mut impl FnMut() -> String, wait: Duration) -> io::Result<()> {
        let mut fds = Vec::with_capacity(self.connections.len() + 1);
        self.interests(&mut fds);
        poller::wait(&mut fds, wait)?;
        self.serve(render)
    }

    /// The sockets to wait on (the listener, each connection for its request or, while its
    /// reply is going out, for output), appended to `fds`.
    pub fn interests(&self, fds: &mut Vec<libc::pollfd>) {
        fds.push(poller::interest(self.listener.as_raw_fd(), true, false));
        for c in &self.connections {
            let writing = matches!(c.phase, Phase::Writing { .. });
            fds.push(poller::interest(c.stream.as_raw_fd(), !writing, writing));
        }
    }

    /// Accepts scrapers and serves each as far as its socket allows now, calling `render` once
    /// per `GET /metrics`; closes connections done with or past their deadline. Errors are the
    /// listener's only.
    pub fn serve(&mut self, render: &mut impl FnMut() -> String) -> io::Result<()> {
        self.accept()?;
        let now = Instant::now();
        self.connections.retain_mut(|c| c.serve(render) && now < c.deadline);
        Ok(())
    }

    /// Takes the connections waiting, at most MAX_CONNECTIONS in one call.
    fn accept(&mut self) -> io::Result<()> {
        for _ in 0..MAX_CONNECTIONS {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if self.connections.len() >= MAX_CONNECTIONS || stream.set_nonblocking(true).is_err() {
                        continue;
                    }
                    let phase = Phase::Reading { request: Vec::new() };
                    self.connections.push(Connection { stream, phase, deadline: Instant::now() + READ_DEADLINE });
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if matches!(e.raw_os_error(), Some(libc::ECONNABORTED | libc::EMFILE | libc::ENFILE)) => {
                    return Ok(())
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

impl Connection {
    /// Reads the request, sends the reply, then lingers until the peer closes; false once the
    /// connection is done with.
    fn serve(&mut self, render: &mut impl FnMut() -> String) -> bool {
        let mut chunk = [0u8; 2048];
        loop {
            match &mut self.phase {
                Phase::Reading { request } => match self.stream.read(&mut chunk) {
                    Ok(0) => return false,
                    Ok(n) => {
                        request.extend_from_slice(&chunk[..n]);
                        if let Some(reply) = respond(request, render) {
                            self.phase = Phase::Writing { reply, sent: 0 };
                            self.deadline = Instant::now() + WRITE_DEADLINE;
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        if Instant::now() < self.deadline {
                            return true;
                        }
                        // Too slow: say so, best effort, and close.
                        let _ = self.stream.write(&text_reply(408, "Request Timeout", "request timeout\n"));
                        return false;
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => return false,
                },
                Phase::Writing { reply, sent } if *sent < reply.len() => match self.stream.write(&reply[*sent..]) {
                    Ok(0) => return false,
                    Ok(n) => *sent += n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => return false,
                },
                Phase::Writing { .. } => {
                    if self.stream.shutdown(Shutdown::Write).is_err() {
                        return false;
                    }
                    self.phase = Phase::Lingering;
                    self.deadline = Instant::now() + LINGER;
                }
                Phase::Lingering => match self.stream.read(&mut chunk) {
                    Ok(0) => return false,
                    Ok(_) => {}
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => return false,
                },
            }
        }
    }
}

/// The reply to what has arrived of a request, or `None` while its headers are incomplete.
fn respond(request: &[u8], render: &mut impl FnMut() -> String) -> Option<Vec<u8>> {
    let head_end = find(request, b"\r\n\r\n").or_else(|| find(request, b"\n\n"));
    let Some(head_end) = head_end else {
        if request.len() > MAX_REQUEST {
            return Some(text_reply(431, "Request Header Fields Too Large", "request too large\n"));
        }
        return None;
    };
    if head_end > MAX_REQUEST {
        return Some(text_reply(431, "Request Header Fields Too Large", "request too large\n"));
    }
    let Ok(head) = std::str::from_utf8(&request[..head_end]) else {
        return Some(text_reply(400, "Bad Request", "bad request\n"));
    };
    let request_line = head.lines().next().unwrap_or("");
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Some(text_reply(400, "Bad Request", "bad request\n"));
    };
    let valid_method = !method.is_empty() && method.bytes().all(|b| b.is_ascii_uppercase());
    if !valid_method || !target.starts_with('/') || !version.starts_with("HTTP/1.") {
        return Some(text_reply(400, "Bad Request", "bad request\n"));
    }
    if method != "GET" && method != "HEAD" {
        let body = b"method not allowed\n";
        return Some(reply(405, "Method Not Allowed", TEXT, "Allow: GET, HEAD\r\n", body, true));
    }
    let path = target.split('?').next().unwrap_or(target);
    if path != "/metrics" {
        return Some(text_reply(404, "Not Found", "not found; try /metrics\n"));
    }
    let body = render();
    Some(reply(200, "OK", CONTENT_TYPE, "", body.as_bytes(), method == "GET"))
}

const TEXT: &str = "text/plain; charset=utf-8";

fn text_reply(status: u16, reason: &str, body: &str) -> Vec<u8> {
    reply(status, reason, TEXT, "", body.as_bytes(), true)
}

/// A whole HTTP/1.1 reply. `headers`: more header lines, each ending in CRLF. `with_body`
/// false for HEAD (the length is still the body's).
fn reply(status: u16, reason: &str, content_type: &str, headers: &str, body: &[u8], with_body: bool) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{headers}\
         Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if with_body {
        out.extend_from_slice(body);
    }
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
