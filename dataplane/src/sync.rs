//! Session sync, the data path's half: what a worker tells the control core about its
//! sessions, and what the control core hands it from the other nodes of the cluster.
//!
//! Owns: the queues between one worker and the sync engine (`SyncChannel`): updates (sessions
//! opened, changed, or kept alive here), walk records (the whole table, for a peer's bulk
//! transfer) and commands (records to install, walks to start). All three are lock-free and
//! bounded; a worker never waits on them: an update that does not fit is counted as lost (and
//! the engine resyncs its peers), a walk pauses until there is room, commands wait their turn.
//! Must never: block, allocate on the packet path, or take a lock.

use crossbeam_queue::ArrayQueue;

use crate::session::{Endpoint, State};

/// Updates a worker can have waiting for the engine.
pub const UPDATES: usize = 1 << 16;
/// Walk records waiting at most (the walk pauses when full).
pub const WALK_RECORDS: usize = 1 << 12;
/// Commands waiting at most (the engine keeps the rest until there is room).
pub const COMMANDS: usize = 1 << 16;

/// A session as the nodes share it (the data path's view of `ctrlplane::sync::wire`'s record).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncRecord {
    pub proto: u8,
    pub state: State,
    /// The node that opened it, and the low 32 bits of that node's epoch then.
    pub owner: u16,
    pub incarnation: u32,
    pub client: Endpoint,
    pub vip: Endpoint,
    pub local: Endpoint,
    /// 0.0.0.0:0 for a per-datagram session.
    pub backend: Endpoint,
    /// How long ago the sender last saw a packet of it.
    pub idle_ms: u32,
}

/// One item of a walk: a record of walk `generation`, or its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalkItem {
    Record(u32, SyncRecord),
    Done(u32),
}

/// What the engine asks of a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncCommand {
    /// Install, or refresh, a session from a peer.
    Upsert(SyncRecord),
    /// Walk the whole table (generation), from the start.
    Walk(u32),
}

/// The queues between one worker and the engine.
pub struct SyncChannel {
    pub updates: ArrayQueue<SyncRecord>,
    pub walk: ArrayQueue<WalkItem>,
    pub commands: ArrayQueue<SyncCommand>,
}

impl Default for SyncChannel {
    fn default() -> SyncChannel {
        SyncChannel {
            updates: ArrayQueue::new(UPDATES),
            walk: ArrayQueue::new(WALK_RECORDS),
            commands: ArrayQueue::new(COMMANDS),
        }
    }
}

/// What a worker in a cluster knows of itself.
#[derive(Clone)]
pub struct SyncSetup {
    /// This node's id (`[cluster] node`).
    pub node: u16,
    /// The low 32 bits of this node's boot epoch.
    pub incarnation: u32,
    pub channel: std::sync::Arc<SyncChannel>,
}

/// Why a peer's record was not installed; counted in `WorkerCounters::sync_refused`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No service here answers its VIP, protocol and port (the nodes' configs differ).
    UnknownService,
    /// Its backend is no backend of that service here.
    UnknownBackend,
    NoRoute,
    /// A session opened here holds its client flow or its (backend, local address) pair.
    Conflict,
    TableFull,
}
