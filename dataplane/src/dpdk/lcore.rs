use std::any::Any;
use std::os::raw::{c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use super::DpdkError;

/// What a launched lcore function is doing, as the main lcore can see it without waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LcoreState {
    Running,
    Finished,
    Panicked,
}

/// A Rust closure running on a worker lcore. `wait` joins it.
pub struct LcoreHandle {
    lcore: u32,
    state: Arc<AtomicU8>,
}

struct Launch<F> {
    body: F,
    state: Arc<AtomicU8>,
    lcore: u32,
}

const RUNNING: u8 = 0;
const FINISHED: u8 = 1;
const PANICKED: u8 = 2;

/// Runs `body` on worker lcore `lcore` through `rte_eal_remote_launch`. A panic inside `body`
/// is caught at the lcore boundary (unwinding into C is undefined), reported on stderr and
/// visible through [`LcoreHandle::state`].
pub fn launch<F: FnOnce() + Send + 'static>(lcore: u32, body: F) -> Result<LcoreHandle, DpdkError> {
    let state = Arc::new(AtomicU8::new(RUNNING));
    let boxed = Box::new(Launch { body, state: state.clone(), lcore });
    let arg = Box::into_raw(boxed) as *mut c_void;
    // SAFETY: `trampoline::<F>` has the C signature rte_eal_remote_launch expects and does not
    // unwind into C (it catches the body's panics; one from its own reporting tail would abort,
    // as Rust >= 1.81 does for any panic leaving an `extern "C"` function).
    // `arg` is a leaked `Box<Launch<F>>` that only that trampoline takes back, once, and
    // `F: Send + 'static` makes running it on another thread with no lifetime bound sound.
    // DPDK wants this called on the main lcore, a duty of the caller that the signature does not
    // enforce: Sluice (and sluice-gen) launch only from the thread that ran rte_eal_init.
    let ret = unsafe { dpdk_sys::rte_eal_remote_launch(Some(trampoline::<F>), arg, lcore) };
    if ret < 0 {
        // SAFETY: `arg` came from `Box::into_raw` of a `Launch<F>` just above, and the launch
        // failed, so the lcore never received it: this is the only owner, freeing it once.
        drop(unsafe { Box::from_raw(arg as *mut Launch<F>) });
        return Err(DpdkError::from_ret(format!("rte_eal_remote_launch(lcore {lcore})"), ret));
    }
    Ok(LcoreHandle { lcore, state })
}

extern "C" fn trampoline<F: FnOnce() + Send + 'static>(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `Box<Launch<F>>` leaked by `launch`, whose `F` instantiated this
    // trampoline; a successful launch runs it exactly once, so the box is taken back once.
    let launch = unsafe { Box::from_raw(arg as *mut Launch<F>) };
    let Launch { body, state, lcore } = *launch;
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(()) => {
            state.store(FINISHED, Ordering::Release);
            0
        }
        Err(payload) => {
            eprintln!("sluice: error: lcore {lcore} panicked: {}", panic_message(&payload));
            state.store(PANICKED, Ordering::Release);
            -1
        }
    }
}

fn panic_message(payload: &Box<dyn Any + Send>) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "(non-string panic payload)"
    }
}

impl LcoreHandle {
    pub fn lcore(&self) -> u32 {
        self.lcore
    }

    pub fn state(&self) -> LcoreState {
        match self.state.load(Ordering::Acquire) {
            RUNNING => LcoreState::Running,
            FINISHED => LcoreState::Finished,
            _ => LcoreState::Panicked,
        }
    }

    /// Blocks until the lcore function returned; true if it finished without panicking.
    pub fn wait(self) -> bool {
        // SAFETY: `self.lcore` is a valid lcore id (a launch on it succeeded) and rte_eal_wait_lcore
        // only polls and resets that lcore's state. DPDK wants it on the main lcore, which the
        // handle (Send) does not enforce: Sluice joins its workers on the lcore that launched them.
        unsafe { dpdk_sys::rte_eal_wait_lcore(self.lcore) == 0 }
    }
}
