//! Waiting on several non-blocking sockets at once with `poll(2)`, for the API server, the
//! metrics server and the health checks: all run on the housekeeping core beside other duties,
//! so none may ever block on one peer, and each call waits at most as long as its caller allows.
//! The appliance's control loop gathers all their sockets into one wait (`interests` of each),
//! so that it sleeps until one of them or a timer needs it, not in turns.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

/// Interest in one socket.
pub fn interest(fd: RawFd, read: bool, write: bool) -> libc::pollfd {
    let mut events = 0;
    if read {
        events |= libc::POLLIN;
    }
    if write {
        events |= libc::POLLOUT;
    }
    libc::pollfd { fd, events, revents: 0 }
}

/// Waits until one of `fds` is ready or `timeout` has passed. A signal that interrupts the
/// wait counts as a wake-up: the caller serves whatever is ready and returns.
pub fn wait(fds: &mut [libc::pollfd], timeout: Duration) -> io::Result<()> {
    // Round up, so that a short non-zero wait does not become a busy loop.
    let millis = timeout.as_nanos().div_ceil(1_000_000).min(libc::c_int::MAX as u128) as libc::c_int;
    // SAFETY: `fds` is a valid, exclusively borrowed slice of `pollfd` for the whole call.
    let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, millis) };
    if rc < 0 {
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
    Ok(())
}

/// Writes what the socket takes now, without raising SIGPIPE if the peer has gone: the
/// appliance may run with the default SIGPIPE disposition (DPDK or a library may reset it).
pub(crate) fn send(socket: &impl AsRawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for `buf.len()` bytes; the descriptor is owned by `socket`.
    let rc = unsafe {
        libc::send(socket.as_raw_fd(), buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT)
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc as usize)
    }
}
