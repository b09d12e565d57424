//! FULLNAT's part in session sync (`crate::sync`): the records its sessions become, when it
//! tells the engine about them, and how it installs the sessions of other nodes.
//!
//! - A session opened here is sent at once; a session whose state changes here, or that is
//!   used here while its last record is older than half its state's timeout, is sent again, so
//!   that no node's copy times out while the flow lives anywhere. Ends are not sent: every
//!   node's copy expires by its own timer (TCP closes move the state, which is sent).
//! - A peer's record installs a copy (origin = the node that opened it) with that node's local
//!   address and port, forwarding exactly as the origin does; an existing copy is refreshed.
//!   A session opened here always wins over a copy for the same flow or ports. Copies go into
//!   every worker (the queue a flow arrives on cannot be known on every NIC), and never give
//!   their port to this worker's pools.
//! - A walk sends every session, a few slots per loop, pausing while the walk queue is full.

use super::*;
use crate::session::{State, EXTRA_PROXY_V2, EXTRA_SYNPROXY, ORIGIN_HERE, TICK_MS};

/// Sessions whose numbers Sluice shifts or maps (`proxied`, `synproxied`): the sync record does
/// not carry that, so a peer could only break their streams; they are not synced.
const NOT_SYNCED: u8 = EXTRA_PROXY_V2 | EXTRA_SYNPROXY;
use crate::sync::{Refusal, SyncCommand, SyncRecord, SyncSetup, WalkItem};

/// Commands taken per loop at most, and walk slots looked at.
const COMMANDS_PER_STEP: usize = 64;
const WALK_SLOTS_PER_STEP: usize = 1024;

/// Per session slot: the incarnation of a copy's origin, and when it was last sent.
#[derive(Debug, Clone, Copy, Default)]
struct Meta {
    incarnation: u32,
    sent_tick: u32,
}

#[derive(Clone)]
pub(super) struct SyncSide {
    setup: SyncSetup,
    meta: Box<[Meta]>,
    /// A walk in progress: its generation and the next slot.
    walk: Option<(u32, usize)>,
    /// A walk's end that did not fit the queue yet.
    done: Option<u32>,
}

impl FullNat {
    /// Takes part in a cluster from now on (allocates a few bytes per session slot).
    pub fn enable_sync(&mut self, setup: SyncSetup) {
        let meta = vec![Meta::default(); self.sessions.capacity()].into_boxed_slice();
        self.sync = Some(Box::new(SyncSide { setup, meta, walk: None, done: None }));
    }

    /// The record of session `id` as this node tells it.
    fn record(&self, sync: &SyncSide, id: SessionId, now_ms: u64) -> SyncRecord {
        let s = self.sessions.get(id);
        let (owner, incarnation) = if s.origin == ORIGIN_HERE {
            (sync.setup.node, sync.setup.incarnation)
        } else {
            (s.origin, sync.meta[id.get() as usize].incarnation)
        };
        SyncRecord {
            proto: s.proto,
            state: s.state,
            owner,
            incarnation,
            client: s.client,
            vip: s.vip,
            local: s.local,
            backend: s.backend,
            idle_ms: now_ms.saturating_sub(s.last_seen_ms).min(u64::from(u32::MAX)) as u32,
        }
    }

    fn send_update(&mut self, id: SessionId, now_ms: u64, c: &WorkerCounters) {
        let Some(sync) = self.sync.as_deref() else { return };
        if self.sessions.get(id).extras & NOT_SYNCED != 0 {
            return; // its shift or mapping is not in the record: not carried over
        }
        let record = self.record(sync, id, now_ms);
        let sync = self.sync.as_deref_mut().expect("checked above");
        sync.meta[id.get() as usize].sent_tick = (now_ms / TICK_MS) as u32;
        if sync.setup.channel.updates.push(record).is_ok() {
            c.sync_updates.add(1);
        } else {
            c.sync_lost.add(1);
        }
    }

    /// After a packet touched session `id`, whose state was `before`: an update when the state
    /// changed, or when peers' copies are due a refresh.
    #[inline]
    pub(super) fn after_touch(&mut self, id: SessionId, before: State, now_ms: u64, c: &WorkerCounters) {
        let Some(sync) = self.sync.as_deref() else { return };
        let s = self.sessions.get(id);
        let half = self.sessions.timeout_ms(s.state) / 2 / TICK_MS;
        let since = (now_ms / TICK_MS).saturating_sub(u64::from(sync.meta[id.get() as usize].sent_tick));
        if s.state != before || since >= half {
            self.send_update(id, now_ms, c);
        }
    }

    /// A session opened here: the other nodes hear of it at once.
    #[inline]
    pub(super) fn after_open(&mut self, id: SessionId, now_ms: u64, c: &WorkerCounters) {
        self.send_update(id, now_ms, c);
    }

    /// Between bursts: commands from the engine, and a step of a walk. Returns the work done.
    pub fn sync_step(&mut self, snap: &Snapshot, now_ms: u64, c: &WorkerCounters) -> usize {
        let Some(sync) = self.sync.as_deref() else { return 0 };
        let channel = sync.setup.channel.clone();
        let mut work = 0;
        for _ in 0..COMMANDS_PER_STEP {
            let Some(command) = channel.commands.pop() else { break };
            work += 1;
            match command {
                SyncCommand::Upsert(record) => match self.upsert(snap, &record, now_ms, c) {
                    Ok(()) => c.sync_installed.add(1),
                    Err(_) => c.sync_refused.add(1),
                },
                SyncCommand::Walk(generation) => {
                    let sync = self.sync.as_deref_mut().expect("checked above");
                    sync.walk = Some((generation, 0));
                    sync.done = None;
                }
            }
        }
        work + self.walk_step(now_ms)
    }

    fn walk_step(&mut self, now_ms: u64) -> usize {
        let Some(sync) = self.sync.as_deref() else { return 0 };
        let channel = sync.setup.channel.clone();
        if let Some(generation) = sync.done {
            if channel.walk.push(WalkItem::Done(generation)).is_ok() {
                self.sync.as_deref_mut().expect("checked above").done = None;
            }
            return 1;
        }
        let Some((generation, mut slot)) = sync.walk else { return 0 };
        let end = (slot + WALK_SLOTS_PER_STEP).min(self.sessions.capacity());
        let mut sent = 0;
        while slot < end {
            if let Some((id, _)) = self.sessions.at_slot(slot).filter(|(_, s)| s.extras & NOT_SYNCED == 0) {
                let record = self.record(self.sync.as_deref().expect("checked above"), id, now_ms);
                if channel.walk.push(WalkItem::Record(generation, record)).is_err() {
                    break; // full: this slot again next time
                }
                sent += 1;
            }
            slot += 1;
        }
        let sync = self.sync.as_deref_mut().expect("checked above");
        if slot >= self.sessions.capacity() {
            sync.walk = None;
            sync.done = Some(generation);
        } else {
            sync.walk = Some((generation, slot));
        }
        sent
    }

    /// Installs or refreshes a peer's session.
    pub(super) fn upsert(
        &mut self,
        snap: &Snapshot,
        r: &SyncRecord,
        now_ms: u64,
        c: &WorkerCounters,
    ) -> Result<(), Refusal> {
        let (node, incarnation) = match self.sync.as_deref() {
            Some(sync) => (sync.setup.node, sync.setup.incarnation),
            None => return Err(Refusal::Conflict),
        };
        let seen = now_ms.saturating_sub(u64::from(r.idle_ms));
        let forward = FlowKey { proto: r.proto, src: r.client, dst: r.vip };
        if let Some((id, Direction::Forward)) = self.sessions.lookup(&forward) {
            let s = *self.sessions.get(id);
            if s.local == r.local && s.backend == r.backend {
                // The same session: as the record says, but never older than seen here, and a
                // TCP state never goes back (a record sent before a FIN seen here is stale).
                let state = if r.state.rank() < s.state.rank() { s.state } else { r.state };
                self.sessions.refresh(id, state, seen, s.origin);
                return Ok(());
            }
            if s.origin == ORIGIN_HERE {
                return Err(Refusal::Conflict);
            }
            // Another node's copy for the same client flow: the newer record wins.
            let old = self.sessions.remove(id);
            end(&mut self.pools, c, &old);
        }
        if r.owner == node && r.incarnation == incarnation {
            // One of this node's own sessions, which lives in another worker.
            return Ok(());
        }
        let service = snap.vips.service(r.proto, r.vip.ip, r.vip.port).ok_or(Refusal::UnknownService)?;
        let (backend_index, to_backend) = if r.backend == WILDCARD {
            (ANY_BACKEND, Hop::NONE)
        } else {
            let id = member_at(snap, service as u16, r.backend.ip, r.backend.port).ok_or(Refusal::UnknownBackend)?;
            (id, snap.backends[id as usize].hop.ok_or(Refusal::NoRoute)?)
        };
        let to_client = snap.routes.lookup(r.client.ip).ok_or(Refusal::NoRoute)?;
        let new = NewSession {
            proto: r.proto,
            client: r.client,
            vip: r.vip,
            local: r.local,
            backend: r.backend,
            service: service as u16,
            backend_index,
            tcp_flags: 0,
            hops: [to_backend, to_client.into()],
        };
        let id = match self.sessions.insert(new, now_ms) {
            Ok(id) => id,
            Err(InsertError::DuplicateKey(Direction::Reply)) => {
                // The (backend, local) pair is held: by a copy, which makes way; else refused.
                let reply = FlowKey { proto: r.proto, src: r.backend, dst: r.local };
                match self.sessions.lookup(&reply) {
                    Some((held, _)) if self.sessions.get(held).origin != ORIGIN_HERE => {
                        let old = self.sessions.remove(held);
                        end(&mut self.pools, c, &old);
                        self.sessions.insert(new, now_ms).map_err(|_| Refusal::Conflict)?
                    }
                    _ => return Err(Refusal::Conflict),
                }
            }
            Err(InsertError::DuplicateKey(Direction::Forward)) => return Err(Refusal::Conflict),
            Err(InsertError::TableFull) => return Err(Refusal::TableFull),
        };
        self.sessions.refresh(id, r.state, seen, r.owner);
        self.restand(snap, id);
        if let Some(sync) = self.sync.as_deref_mut() {
            sync.meta[id.get() as usize] = Meta { incarnation: r.incarnation, sent_tick: (now_ms / TICK_MS) as u32 };
        }
        if let Some(stats) = c.services.get(service) {
            stats.sessions.inc();
        }
        if let Some(stats) = c.backends.get(backend_index as usize) {
            stats.copies.inc();
        }
        if let Some(held) = c.held_for(r.owner) {
            held.inc();
        }
        Ok(())
    }
}
