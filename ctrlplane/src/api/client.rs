//! The client's end of the API socket: one request, one reply, within a deadline.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::protocol::{parse_response, Request};

/// Largest reply accepted (a long session table is large, but not unbounded).
pub const MAX_REPLY: usize = 256 * 1024 * 1024;

/// Sends `request` to the server at `path` and returns the reply's `data`, or the server's
/// error message, or what went wrong on the way (cannot connect, no reply within `timeout`).
pub fn call(path: &Path, request: &Request, timeout: Duration) -> Result<Value, String> {
    let deadline = Instant::now() + timeout;
    let mut stream = UnixStream::connect(path)
        .map_err(|e| format!("cannot connect to {}: {e} (is sluice running?)", path.display()))?;
    let lost = |e: std::io::Error| match e.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => {
            format!("no reply from {} within {:?}", path.display(), timeout)
        }
        _ => format!("connection to {} failed: {e}", path.display()),
    };
    stream
        .set_write_timeout(Some(remaining(deadline).ok_or_else(|| lost(ErrorKind::TimedOut.into()))?))
        .map_err(lost)?;
    stream.write_all(request.to_line().as_bytes()).map_err(lost)?;

    let mut reply = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    loop {
        let left = remaining(deadline).ok_or_else(|| lost(ErrorKind::TimedOut.into()))?;
        stream.set_read_timeout(Some(left)).map_err(lost)?;
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                reply.extend_from_slice(&chunk[..n]);
                if chunk[..n].contains(&b'\n') {
                    break;
                }
                if reply.len() > MAX_REPLY {
                    return Err(format!("reply from {} larger than {MAX_REPLY} bytes", path.display()));
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(lost(e)),
        }
    }
    if reply.is_empty() {
        return Err(format!("{} closed the connection without a reply", path.display()));
    }
    let line = String::from_utf8(reply).map_err(|_| "malformed reply from the daemon: not UTF-8".to_owned())?;
    parse_response(&line)
}

/// Time left before `deadline`, or `None` once it has passed (a zero timeout would mean
/// "block forever" to the socket).
fn remaining(deadline: Instant) -> Option<Duration> {
    deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero())
}
