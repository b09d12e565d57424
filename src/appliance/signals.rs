//! SIGTERM/SIGINT ask for a clean stop (a second one for a stop without the BGP drain),
//! SIGHUP for a reload. signal-hook's handlers only set flags; the control loop polls them
//! (every few tens of milliseconds), so two stop signals closer together than one poll count
//! as one.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, LazyLock};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

/// Set by a stop signal, cleared when counted.
static STOP: LazyLock<Arc<AtomicBool>> = LazyLock::new(Default::default);
static STOPS_SEEN: AtomicU32 = AtomicU32::new(0);
static RELOAD: LazyLock<Arc<AtomicBool>> = LazyLock::new(Default::default);

pub fn install() -> std::io::Result<()> {
    signal_hook::flag::register(SIGTERM, Arc::clone(&STOP))?;
    signal_hook::flag::register(SIGINT, Arc::clone(&STOP))?;
    signal_hook::flag::register(SIGHUP, Arc::clone(&RELOAD))?;
    Ok(())
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
