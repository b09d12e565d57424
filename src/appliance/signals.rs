//! SIGTERM/SIGINT ask for a clean stop (a second one for a stop without the BGP drain),
//! SIGHUP for a reload. signal-hook's handlers set flags, then write a byte to a socket the
//! control loop waits on (`wake_fd`), so a signal ends its wait at once whichever thread the
//! kernel delivered it to; the loop reads the flags as it wakes, so two stop signals closer
//! together than one turn of the loop count as one.

use std::io::{ErrorKind, Read};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, LazyLock, OnceLock};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

/// Set by a stop signal, cleared when counted.
static STOP: LazyLock<Arc<AtomicBool>> = LazyLock::new(Default::default);
static STOPS_SEEN: AtomicU32 = AtomicU32::new(0);
static RELOAD: LazyLock<Arc<AtomicBool>> = LazyLock::new(Default::default);
/// The read end of the wake-up socket; the handlers hold the write end.
static WAKE: OnceLock<UnixStream> = OnceLock::new();

pub fn install() -> std::io::Result<()> {
    // The flags first: signal-hook runs a signal's actions in the order they were registered,
    // so a loop woken by the byte finds its flag set.
    signal_hook::flag::register(SIGTERM, Arc::clone(&STOP))?;
    signal_hook::flag::register(SIGINT, Arc::clone(&STOP))?;
    signal_hook::flag::register(SIGHUP, Arc::clone(&RELOAD))?;
    if WAKE.get().is_some() {
        return Ok(());
    }
    // The read end lives as long as the process: a write to a socket whose reader has gone
    // would raise SIGPIPE in the handler.
    let (read, write) = UnixStream::pair()?;
    read.set_nonblocking(true)?;
    write.set_nonblocking(true)?;
    for signal in [SIGTERM, SIGINT, SIGHUP] {
        signal_hook::low_level::pipe::register(signal, write.try_clone()?)?;
    }
    let _ = WAKE.set(read);
    Ok(())
}

/// The descriptor a signal makes readable, for the control loop's wait (None before `install`).
pub fn wake_fd() -> Option<RawFd> {
    WAKE.get().map(AsRawFd::as_raw_fd)
}

/// Empties the wake-up socket, so that the next wait sleeps until the next signal.
pub fn drain_wake() {
    let Some(mut socket) = WAKE.get() else { return };
    let mut buf = [0u8; 64];
    // Bounded: each signal wrote one byte, and a read that fills the buffer is followed by
    // one that finds the socket empty unless signals keep arriving.
    for _ in 0..16 {
        match socket.read(&mut buf) {
            Ok(n) if n == buf.len() => continue,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            _ => return,
        }
    }
}

/// How many stop signals arrived.
pub fn stop_requests() -> u32 {
    if STOP.swap(false, Ordering::SeqCst) {
        STOPS_SEEN.fetch_add(1, Ordering::SeqCst);
    }
    STOPS_SEEN.load(Ordering::SeqCst)
}

/// True once per SIGHUP received.
pub fn take_reload() -> bool {
    RELOAD.swap(false, Ordering::SeqCst)
}
