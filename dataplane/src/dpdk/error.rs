use std::fmt;

/// A failed DPDK call: which operation, and DPDK's explanation of the errno it gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpdkError {
    pub operation: String,
    pub errno: i32,
    pub message: String,
}

impl DpdkError {
    /// From a negative return value of an ethdev-style call (`-errno`).
    pub fn from_ret(operation: impl Into<String>, ret: i32) -> Self {
        Self::from_errno(operation, ret.saturating_abs())
    }

    /// From the calling thread's `rte_errno`, for calls that return NULL or -1.
    pub fn from_rte_errno(operation: impl Into<String>) -> Self {
        // SAFETY: sluice_rte_errno (shim.c) takes no arguments and only reads the calling
        // thread's `rte_errno`, a thread-local no other thread writes.
        Self::from_errno(operation, unsafe { dpdk_sys::sluice_rte_errno() })
    }

    pub fn from_errno(operation: impl Into<String>, errno: i32) -> Self {
        // SAFETY: rte_strerror accepts any errno and returns a NUL-terminated string, either a
        // static one or the calling thread's own buffer (rte_errno.h). It is copied out at once,
        // before any other DPDK call on this thread could overwrite that buffer.
        let message = unsafe { std::ffi::CStr::from_ptr(dpdk_sys::rte_strerror(errno)) }.to_string_lossy().into_owned();
        DpdkError { operation: operation.into(), errno, message }
    }

    /// An error found by Sluice itself around a DPDK call (no errno).
    pub fn other(operation: impl Into<String>, message: impl Into<String>) -> Self {
        DpdkError { operation: operation.into(), errno: 0, message: message.into() }
    }
}

impl fmt::Display for DpdkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.operation, self.message)
    }
}

impl std::error::Error for DpdkError {}

/// Turns an ethdev-style return code (0 or positive on success, -errno on failure) into a Result.
pub(crate) fn check(ret: i32, operation: impl FnOnce() -> String) -> Result<i32, DpdkError> {
    if ret < 0 {
        Err(DpdkError::from_ret(operation(), ret))
    } else {
        Ok(ret)
    }
}
