//! Announcing this node's VIPs to its routers by BGP, through BIRD 2.
//!
//! Sluice does not speak BGP itself: BIRD does, the daemon operators already run and trust.
//! Sluice writes BIRD's whole configuration from `[bgp]` (`bird_conf`), runs `bird -f` in its
//! own network namespace and supervises it (`daemon`: restarted with backoff, killed by the
//! kernel when Sluice dies, even by SIGKILL), and tells it what to announce by rewriting a
//! routes file and asking for `configure` over BIRD's control socket (`birdc`), which changes
//! the static routes without resetting any BGP session. Which prefixes are announced, and why
//! one is not, is decided by `announce` from the appliance's state. `speaker` runs all of it on
//! a thread of the control core, so that a slow or stuck BIRD never holds up the control loop.
//!
//! Never on the packet path: nothing here is touched by a worker.

pub mod announce;
pub mod bird_conf;
pub mod birdc;
mod daemon;
mod speaker;

pub use announce::{plan, Candidate, NodeState, RouteKind, Withdrawn};
pub use bird_conf::Paths;
pub use daemon::resolve_binary;
pub use speaker::{preflight, BirdState, Fields, Level, Log, NeighborState, Speaker, SpeakerStatus};
