//! Session sync between the nodes of a cluster, the control core's half: the wire protocol
//! (`wire`) and each peer's reliable, authenticated, replay-proof stream (`peer`).

pub mod engine;
pub mod peer;
pub mod wire;
