use std::ffi::CString;
use std::os::raw::c_char;
use std::sync::atomic::{AtomicBool, Ordering};

use super::DpdkError;

static INITIALISED: AtomicBool = AtomicBool::new(false);

/// The initialised Environment Abstraction Layer. One per process; dropping it runs
/// `rte_eal_cleanup`, so it must outlive every port, mempool and lcore it made possible.
pub struct Eal {
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Eal {
    /// Initialises the EAL with `args` (without the program name). The calling thread becomes
    /// the main lcore and is pinned by the EAL to that lcore's CPU set.
    pub fn init(args: &[String]) -> Result<Eal, DpdkError> {
        if INITIALISED.swap(true, Ordering::SeqCst) {
            return Err(DpdkError::other("rte_eal_init", "the EAL can be initialised once per process"));
        }
        let mut owned: Vec<CString> = Vec::with_capacity(args.len() + 1);
        owned.push(CString::new("sluice").expect("static string has no NUL"));
        for arg in args {
            let arg = CString::new(arg.as_str())
                .map_err(|_| DpdkError::other("rte_eal_init", format!("argument {arg:?} contains NUL")))?;
            owned.push(arg);
        }
        // rte_eal_init may permute argv and write into the strings (`--socket-mem` is split in
        // place), so it gets its own array of pointers from `CString::into_raw`, which allows
        // writes; the strings stay allocated for the rest of the process (the EAL keeps some).
        let mut argv: Vec<*mut c_char> = owned.into_iter().map(CString::into_raw).collect();
        // SAFETY: `argv` holds `argv.len()` pointers to NUL-terminated, writable strings that are
        // never freed, so nothing the EAL keeps ever dangles and Rust never reads them again;
        // the EAL permutes `argv`, an array of ours alone, which is forgotten after the call.
        // INITIALISED makes this the only rte_eal_init of the process; the calling thread
        // becomes the main lcore, as the EAL requires.
        let ret = unsafe { dpdk_sys::rte_eal_init(argv.len() as i32, argv.as_mut_ptr()) };
        std::mem::forget(argv);
        if ret < 0 {
            return Err(DpdkError::from_rte_errno("rte_eal_init"));
        }
        Ok(Eal { _not_send: std::marker::PhantomData })
    }

    /// The socket (NUMA node) of the calling lcore.
    pub fn socket_id(&self) -> i32 {
        // SAFETY: rte_socket_id takes no arguments and reads the calling thread's own
        // thread-local socket id, which no other thread writes.
        unsafe { dpdk_sys::rte_socket_id() as i32 }
    }
}

impl Drop for Eal {
    fn drop(&mut self) {
        // SAFETY: this `Eal` is the one successful rte_eal_init of the process and is dropped
        // once, on the main lcore that initialised it (`Eal` is neither Send nor Sync). The other
        // requirement, that no DPDK object outlives it and no DPDK call follows, is not checked by
        // the types but left to the owner: the appliance drops its `Eal` last (field order) and
        // joins its worker lcores in `shutdown` before that.
        unsafe { dpdk_sys::rte_eal_cleanup() };
    }
}
