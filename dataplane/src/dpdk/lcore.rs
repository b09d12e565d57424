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
    let ret = unsafe { dpdk_sys::rte_eal_remote_launch(Some(trampoline::<F>), arg, lcore) };
    if ret < 0 {
        // SAFETY: the launch failed, so the lcore never took ownership of `arg`.
        drop(unsafe { Box::from_raw(arg as *mut Launch<F>) });
        return Err(DpdkError::from_ret(format!("rte_eal_remote_launch(lcore {lcore})"), ret));
    }
    Ok(LcoreHandle { lcore, state })
}

extern "C" fn trampoline<F: FnOnce() + Send + 'static>(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the Box leaked by `launch` for exactly this call.
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
        unsafe { dpdk_sys::rte_eal_wait_lcore(self.lcore) == 0 }
    }
}
