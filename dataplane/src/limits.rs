//! Fixed sizes of what the control plane describes and every worker counts: backend and
//! service ids index per-worker statistics tables allocated once at start, so a snapshot may
//! hold no more than these. Below `snapshot` and `counters`, which both read them.

/// Most backends a snapshot may hold.
pub const MAX_BACKENDS: usize = 4096;
/// Most services (slots) a snapshot may hold.
pub const MAX_SERVICES: usize = 1024;
