//! The API server: the appliance's end of the Unix socket that `sluicectl` talks to.
//!
//! It runs on the housekeeping core, called in its loop beside health checks and metrics, so
//! it never blocks on one client: the listener and every connection are non-blocking, each
//! `poll` waits at most the time it is given, and every client has its own buffers.
//! What a client can cost is bounded:
//! - a request line is at most `MAX_LINE` bytes; a longer one gets an error reply and the
//!   connection is closed after it;
//! - a client has at most one reply pending: the next request is read only once the socket
//!   has taken the previous reply, so a client that sends and never reads holds one reply;
//! - a client that makes no progress (nothing read, nothing written) for `IDLE_TIMEOUT` is
//!   closed;
//! - at most `MAX_CLIENTS` at once: one more is told so and closed.
//!
//! The socket file is mode 0600 (root talks to root), created in a directory that `bind`
//! makes (0755) if missing, and removed when the server is dropped.

use std::fs::{self, DirBuilder};
use std::io::{self, ErrorKind, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::poller;
use super::protocol::{response_line, Request};

/// Longest request line, newline excluded.
pub const MAX_LINE: usize = 64 * 1024;
/// Most clients connected at once.
pub const MAX_CLIENTS: usize = 64;
/// A client that neither sends nor reads anything for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Most requests served for one client in one `poll`, so that a busy client cannot starve
/// the others nor the caller's loop.
const REQUESTS_PER_POLL: usize = 16;

/// The listening API socket and its connected clients.
#[derive(Debug)]
pub struct ApiServer {
    path: PathBuf,
    listener: UnixListener,
    /// Device and inode of the socket file we made, so that drop removes only ours.
    identity: (u64, u64),
    clients: Vec<Client>,
}

#[derive(Debug)]
struct Client {
    stream: UnixStream,
    input: Vec<u8>,
    output: Vec<u8>,
    /// Close once `output` is sent: the request was too long, or the client shut its side.
    closing: bool,
    last_progress: Instant,
}

/// What one round of serving left a client in.
#[derive(Debug, PartialEq, Eq)]
enum Progress {
    /// Waiting for the socket; `poll` wakes on it.
    Waiting,
    /// More complete requests are buffered than this `poll` serves: serve again soon.
    Ready,
    Closed,
}

impl ApiServer {
    /// Listens on `path`. Creates its directory (0755) if missing; replaces a stale socket
    /// file left by a server that died, but refuses (`AddrInUse`) while another server
    /// answers on it, and refuses to replace anything that is not a socket.
    pub fn bind(path: &Path) -> io::Result<ApiServer> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
            DirBuilder::new().recursive(true).mode(0o755).create(dir)?;
        }
        match fs::symlink_metadata(path) {
            Ok(meta) if !meta.file_type().is_socket() => {
                return Err(io::Error::new(
                    ErrorKind::AlreadyExists,
                    format!("{} exists and is not a socket", path.display()),
                ));
            }
            Ok(_) => match UnixStream::connect(path) {
                Ok(_) => {
                    return Err(io::Error::new(
                        ErrorKind::AddrInUse,
                        format!("another server is listening on {}", path.display()),
                    ));
                }
                Err(_) => fs::remove_file(path)?,
            },
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let listener = UnixListener::bind(path)?;
        listener.set_nonblocking(true)?;
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
        let meta = fs::symlink_metadata(path)?;
        Ok(ApiServer { path: path.to_owned(), listener, identity: (meta.dev(), meta.ino()), clients: Vec::new() })
    }

    /// The socket file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many clients are connected.
    pub fn clients(&self) -> usize {
        self.clients.len()
    }

    /// Accepts new clients and serves every complete request with `handler`, waiting at most
    /// `wait` for something to do. Never blocks on a client. Errors are the listener's only;
    /// a client's own errors close that client.
    pub fn poll(
        &mut self,
        handler: &mut impl FnMut(Request) -> Result<Value, String>,
        wait: Duration,
    ) -> io::Result<()> {
        let mut fds = Vec::with_capacity(self.clients.len() + 1);
        self.interests(&mut fds);
        poller::wait(&mut fds, if self.has_request_ready() { Duration::ZERO } else { wait })?;
        self.serve(handler)
    }

    /// Whether a request is already buffered: the caller must not wait before `serve`.
    pub fn has_request_ready(&self) -> bool {
        self.clients.iter().any(Client::has_request_ready)
    }

    /// The sockets to wait on (the listener, each client for input or, while it has some
    /// unsent, for output), appended to `fds`.
    pub fn interests(&self, fds: &mut Vec<libc::pollfd>) {
        fds.push(poller::interest(self.listener.as_raw_fd(), true, false));
        for client in &self.clients {
            let wants_output = !client.output.is_empty();
            fds.push(poller::interest(client.stream.as_raw_fd(), !wants_output, wants_output));
        }
    }

    /// Accepts new clients and serves every complete request with `handler`, as far as the
    /// sockets allow now; closes clients that are done or idle too long. Errors are the
    /// listener's only.
    pub fn serve(&mut self, handler: &mut impl FnMut(Request) -> Result<Value, String>) -> io::Result<()> {
        self.accept()?;
        let now = Instant::now();
        self.clients.retain_mut(|client| match client.serve(handler) {
            Progress::Closed => false,
            Progress::Ready => true,
            Progress::Waiting => now.duration_since(client.last_progress) < IDLE_TIMEOUT,
        });
        Ok(())
    }

    /// Takes the connections waiting, at most MAX_CLIENTS in one call.
    fn accept(&mut self) -> io::Result<()> {
        for _ in 0..MAX_CLIENTS {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if self.clients.len() >= MAX_CLIENTS {
                        let line = response_line(&Err(format!("too many clients (at most {MAX_CLIENTS})")));
                        let _ = poller::send(&stream, line.as_bytes());
                        continue;
                    }
                    if stream.set_nonblocking(true).is_err() {
                        continue;
                    }
                    self.clients.push(Client {
                        stream,
                        input: Vec::new(),
                        output: Vec::new(),
                        closing: false,
                        last_progress: Instant::now(),
                    });
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                // The client gave up before we took it, or we are out of descriptors for now:
                // nothing to serve; the listener itself is fine.
                Err(e) if is_transient_accept_error(&e) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

fn is_transient_accept_error(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ECONNABORTED | libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM))
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        // Remove the file only if it is still ours, not one a newer server has put there.
        if let Ok(meta) = fs::symlink_metadata(&self.path) {
            if (meta.dev(), meta.ino()) == self.identity {
                let _ = fs::remove_file(&self.path);
            }
        }
    }
}

impl Client {
    fn has_request_ready(&self) -> bool {
        self.output.is_empty() && !self.closing && self.input.contains(&b'\n')
    }

    /// Sends what is pending, then serves buffered requests one at a time, reading more when
    /// none is complete, until the socket would block or the budget is spent.
    fn serve(&mut self, handler: &mut impl FnMut(Request) -> Result<Value, String>) -> Progress {
        let mut chunk = [0u8; 8192];
        let mut budget = REQUESTS_PER_POLL;
        loop {
            if !self.output.is_empty() {
                match poller::send(&self.stream, &self.output) {
                    Ok(0) => return Progress::Closed,
                    Ok(n) => {
                        self.output.drain(..n);
                        self.last_progress = Instant::now();
                        continue;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return Progress::Waiting,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(_) => return Progress::Closed,
                }
            }
            if self.closing {
                return Progress::Closed;
            }
            if let Some(end) = self.input.iter().position(|&b| b == b'\n') {
                if budget == 0 {
                    return Progress::Ready;
                }
                budget -= 1;
                let line: Vec<u8> = self.input.drain(..=end).collect();
                self.output = answer(&line[..end], handler).into_bytes();
                continue;
            }
            if self.input.len() > MAX_LINE {
                let message = format!("request line longer than {MAX_LINE} bytes");
                self.output = response_line(&Err(message)).into_bytes();
                self.closing = true;
                continue;
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    // The client has shut its side: answer a last line without a newline,
                    // then close.
                    self.closing = true;
                    if !self.input.is_empty() {
                        let line = std::mem::take(&mut self.input);
                        self.output = answer(&line, handler).into_bytes();
                    }
                }
                Ok(n) => {
                    self.input.extend_from_slice(&chunk[..n]);
                    self.last_progress = Instant::now();
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Progress::Waiting,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Progress::Closed,
            }
        }
    }
}

/// The reply line to one request line (its bytes, newline excluded), what `handler` made of it
/// or why it was refused. Public for fuzzing.
pub fn answer(line: &[u8], handler: &mut impl FnMut(Request) -> Result<Value, String>) -> String {
    let result = match std::str::from_utf8(line) {
        Ok(text) => Request::parse(text).and_then(handler),
        Err(_) => Err("bad JSON: the request is not valid UTF-8".into()),
    };
    response_line(&result)
}
