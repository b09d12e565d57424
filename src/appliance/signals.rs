//! SIGTERM/SIGINT ask for a clean stop (a second one for a stop without the BGP drain),
//! SIGHUP for a reload. The handlers only count and set flags; the control loop polls them.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

static STOP: AtomicU32 = AtomicU32::new(0);
static RELOAD: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop(_: libc::c_int) {
    STOP.fetch_add(1, Ordering::SeqCst);
}

extern "C" fn on_reload(_: libc::c_int) {
    RELOAD.store(true, Ordering::SeqCst);
}

pub fn install() {
    unsafe {
        set(libc::SIGTERM, on_stop);
        set(libc::SIGINT, on_stop);
        set(libc::SIGHUP, on_reload);
    }
}

unsafe fn set(signal: libc::c_int, handler: extern "C" fn(libc::c_int)) {
    let mut action: libc::sigaction = std::mem::zeroed();
    action.sa_sigaction = handler as usize;
    action.sa_flags = libc::SA_RESTART;
    libc::sigemptyset(&mut action.sa_mask);
    libc::sigaction(signal, &action, std::ptr::null_mut());
}

/// How many stop signals arrived.
pub fn stop_requests() -> u32 {
    STOP.load(Ordering::SeqCst)
}

/// True once per SIGHUP received.
pub fn take_reload() -> bool {
    RELOAD.swap(false, Ordering::SeqCst)
}
