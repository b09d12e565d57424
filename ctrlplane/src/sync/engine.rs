//! The sync engine: one thread on the control core with one UDP socket, speaking to every
//! peer, between the appliance's session tables (`Table`) and the peers (`Peer`).
//!
//! Each pass (at least every `POLL`): datagrams in (checked by `wire::decode`, then by the
//! peer's epoch, replay and stream state; records go to the table); the workers' updates out
//! to every live peer (counted as skipped for a dead one, which is resynced when back); a walk
//! of the whole table for peers that want a bulk transfer, paced by their room; liveness;
//! batches, resends and hellos out; the status the appliance reads. Nothing here waits on a
//! worker or a peer: queues are bounded, and what does not fit is counted.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::peer::{BulkOut, Local, Peer};
use super::wire::{decode, encode, Hello, Key, SessionRecord, MAX_MESSAGE};
use crate::bgp::{Level, Log};

/// The engine sleeps at most this long between passes.
const POLL: Duration = Duration::from_millis(2);
/// Datagrams read, and worker updates taken, per pass at most.
const BATCH: usize = 512;
/// Records taken from a walk per pass at most.
const WALK_BATCH: usize = 4096;
/// A node waits for the tables of live peers at least this many `dead_after`s after it starts
/// (to hear from them), and at most `READY_MAX`.
const READY_MIN_DEAD_AFTERS: u32 = 2;
const READY_MAX: Duration = Duration::from_secs(30);
/// A peer's scheduler digest may differ this long (a health change reaching nodes at different
/// moments) before it is logged.
const DIGEST_GRACE: Duration = Duration::from_secs(3);

/// The sessions of this node, as the engine sees them.
pub trait Table: Send + 'static {
    /// Records from a peer: installed, or refreshed, wherever they will be looked up.
    fn apply(&mut self, records: &[SessionRecord]);
    /// What the workers opened, changed or kept alive since the last call (at most `max`).
    fn updates(&mut self, out: &mut Vec<SessionRecord>, max: usize);
    /// Starts a walk of every session, numbered `generation`.
    fn start_walk(&mut self, generation: u32);
    /// Records of walk `generation` (at most `max`); true once the walk is over and all of it
    /// was taken.
    fn walk(&mut self, generation: u32, out: &mut Vec<SessionRecord>, max: usize) -> bool;
    /// Sessions this node holds.
    fn sessions(&self) -> u32;
    /// Updates the workers could not hand over since the last call (their queue was full).
    fn lost(&mut self) -> u64;
}

/// What the engine needs to start.
pub struct Settings {
    pub node: u16,
    pub address: Ipv4Addr,
    pub port: u16,
    pub peers: Vec<Ipv4Addr>,
    pub hello: Duration,
    pub dead_after: Duration,
    pub key: Key,
    /// This node's boot epoch: a number that grows with every start (microseconds of the clock).
    pub epoch: u64,
}

/// What the appliance tells peers about this node; changes at run time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Advert {
    pub local_ips: Vec<Ipv4Addr>,
    /// `digest` of the scheduler input.
    pub digest: u64,
}

/// One peer, for status and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStatus {
    pub address: Ipv4Addr,
    pub node: Option<u16>,
    pub up: bool,
    pub epoch: Option<u64>,
    /// The local IPs its hellos name (announced here as backups).
    pub local_ips: Vec<Ipv4Addr>,
    /// Sessions it says it holds.
    pub sessions: u32,
    /// Whether its scheduler input matches ours (None until it said).
    pub digest_matches: Option<bool>,
    pub messages_in: u64,
    pub messages_out: u64,
    pub resends: u64,
    pub records_in: u64,
    pub records_out: u64,
    pub dropped: Vec<(&'static str, u64)>,
    /// We still wait for its whole table.
    pub awaiting_bulk: bool,
}

/// What the engine reports.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClusterStatus {
    pub node: u16,
    pub epoch: u64,
    /// This node has every live peer's table (or waited long enough): it may announce.
    pub ready: bool,
    pub peers: Vec<PeerStatus>,
    /// Datagrams refused before a peer could be named, by reason.
    pub dropped: Vec<(&'static str, u64)>,
}

struct Shared {
    advert: Mutex<Advert>,
    status: Mutex<ClusterStatus>,
    stop: std::sync::atomic::AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The running engine; stopped on drop.
pub struct Engine {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Engine {
    /// Binds the socket (an error if it cannot) and starts the thread.
    pub fn start(settings: Settings, table: impl Table, log: Log) -> Result<Engine, String> {
        let bind = SocketAddrV4::new(settings.address, settings.port);
        let socket = UdpSocket::bind(bind).map_err(|e| format!("cluster: cannot bind {bind}: {e}"))?;
        socket.set_nonblocking(true).map_err(|e| e.to_string())?;
        bigger_buffers(&socket);
        let shared = Arc::new(Shared {
            advert: Mutex::new(Advert::default()),
            status: Mutex::new(ClusterStatus { node: settings.node, epoch: settings.epoch, ..Default::default() }),
            stop: std::sync::atomic::AtomicBool::new(false),
        });
        let mut run = Run::new(settings, socket, table, log, shared.clone());
        run.publish(Instant::now());
        let thread = std::thread::Builder::new()
            .name("sluice-sync".into())
            .spawn(move || run.run())
            .map_err(|e| format!("cannot start the sync thread: {e}"))?;
        Ok(Engine { shared, thread: Some(thread) })
    }

    pub fn set_advert(&self, advert: Advert) {
        *lock(&self.shared.advert) = advert;
    }

    pub fn status(&self) -> ClusterStatus {
        lock(&self.shared.status).clone()
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.shared.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn bigger_buffers(socket: &UdpSocket) {
    let size: libc::c_int = 4 << 20;
    for option in [libc::SO_SNDBUF, libc::SO_RCVBUF] {
        // SAFETY: setsockopt on our own socket with a c_int of the length given.
        unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
}

/// The thread's state.
struct Run<T: Table> {
    s: Settings,
    local: Local,
    socket: UdpSocket,
    table: T,
    log: Log,
    shared: Arc<Shared>,
    peers: Vec<Peer>,
    /// Per peer: alive at the last pass; when its digest started to differ.
    alive: Vec<bool>,
    digest_since: Vec<Option<Instant>>,
    digest_logged: Vec<bool>,
    conflict_logged: bool,
    dropped: Vec<(&'static str, u64)>,
    walk: Option<u32>,
    generation: u32,
    started: Instant,
    ready: bool,
    buf: Vec<u8>,
    records: Vec<SessionRecord>,
}

impl<T: Table> Run<T> {
    fn new(s: Settings, socket: UdpSocket, table: T, log: Log, shared: Arc<Shared>) -> Run<T> {
        let peers: Vec<Peer> = s.peers.iter().map(|&a| Peer::new(a)).collect();
        let n = peers.len();
        Run {
            local: Local { node: s.node, epoch: s.epoch },
            s,
            socket,
            table,
            log,
            shared,
            peers,
            alive: vec![false; n],
            digest_since: vec![None; n],
            digest_logged: vec![false; n],
            conflict_logged: false,
            dropped: Vec::new(),
            walk: None,
            generation: 0,
            started: Instant::now(),
            ready: false,
            buf: Vec::with_capacity(MAX_MESSAGE),
            records: Vec::new(),
        }
    }

    fn run(&mut self) {
        while !self.shared.stop.load(std::sync::atomic::Ordering::SeqCst) {
            let now = Instant::now();
            self.receive(now);
            self.updates(now);
            self.walks(now);
            self.liveness(now);
            self.send(now);
            self.publish(now);
            self.wait();
        }
    }

    fn log(&self, level: Level, line: &str) {
        (self.log)(level, line, &[]);
    }

    fn count(&mut self, reason: &'static str) {
        match self.dropped.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, n)) => *n += 1,
            None => self.dropped.push((reason, 1)),
        }
    }

    fn receive(&mut self, now: Instant) {
        let mut datagram = [0u8; MAX_MESSAGE + 1];
        for _ in 0..BATCH {
            let (len, from) = match self.socket.recv_from(&mut datagram) {
                Ok(got) => got,
                Err(_) => break,
            };
            let SocketAddr::V4(from) = from else { continue };
            let Some(i) = self.peers.iter().position(|p| p.address == *from.ip()) else {
                self.count("unknown_peer");
                continue;
            };
            let message = match decode(&datagram[..len], &self.s.key) {
                Ok(m) => m,
                Err(e) => {
                    self.peers[i].stats.drop(e.reason(), 1);
                    continue;
                }
            };
            if message.header.node == self.s.node {
                self.count("node_conflict");
                if !self.conflict_logged {
                    self.conflict_logged = true;
                    let line = format!(
                        "cluster: peer {} says it is node {}, as this node is: node ids must differ",
                        from.ip(),
                        self.s.node
                    );
                    self.log(Level::Error, &line);
                }
                continue;
            }
            let peer = &mut self.peers[i];
            let old_epoch = peer.epoch;
            // A refusal is counted by the peer.
            if let Ok(got) = peer.receive(&message, self.local, now) {
                if got.new_epoch && old_epoch.is_some() {
                    let line = format!(
                        "cluster: peer {} (node {}) restarted (epoch {}); it gets this node's whole table",
                        peer.address, message.header.node, message.header.epoch
                    );
                    (self.log)(
                        Level::Warning,
                        &line,
                        &peer_fields(peer.address, Some(message.header.node), "restarted"),
                    );
                }
                if !got.records.is_empty() {
                    self.table.apply(&got.records);
                }
                if got.bulk_complete {
                    let line = format!(
                        "cluster: received the whole table of peer {} (node {})",
                        peer.address, message.header.node
                    );
                    (self.log)(
                        Level::Info,
                        &line,
                        &peer_fields(peer.address, Some(message.header.node), "table_received"),
                    );
                }
            }
        }
    }

    /// The workers' updates, to every live peer.
    fn updates(&mut self, now: Instant) {
        let lost = self.table.lost();
        if lost > 0 {
            // Peers missed updates: each gets the whole table again.
            for (i, peer) in self.peers.iter_mut().enumerate() {
                if self.alive[i] {
                    peer.skip_lost(lost);
                }
            }
        }
        self.records.clear();
        self.table.updates(&mut self.records, BATCH);
        if self.records.is_empty() {
            return;
        }
        for (i, peer) in self.peers.iter_mut().enumerate() {
            if self.alive[i] {
                for r in &self.records {
                    peer.push(*r, false, now);
                }
            } else if peer.epoch.is_some() {
                // A peer never heard from asks for the whole table when it comes.
                peer.skip(self.records.len() as u64);
            }
        }
    }

    /// Bulk transfers: one walk of the table at a time feeds every peer that wanted one when
    /// it began, as fast as the slowest of them has room.
    fn walks(&mut self, now: Instant) {
        for (i, peer) in self.peers.iter_mut().enumerate() {
            if peer.needs_resync && self.alive[i] && peer.bulk_out == BulkOut::Idle && peer.has_room() {
                peer.needs_resync = false;
                peer.bulk_out = BulkOut::Wanted;
            }
        }
        let Some(generation) = self.walk else {
            let wanted: Vec<usize> =
                (0..self.peers.len()).filter(|&i| self.peers[i].bulk_out == BulkOut::Wanted && self.alive[i]).collect();
            if !wanted.is_empty() {
                self.generation = self.generation.wrapping_add(1);
                for &i in &wanted {
                    self.peers[i].bulk_out = BulkOut::Walking(self.generation);
                    self.peers[i].needs_resync = false;
                }
                self.table.start_walk(self.generation);
                self.walk = Some(self.generation);
            }
            return;
        };
        let walking = |p: &Peer| p.bulk_out == BulkOut::Walking(generation);
        if !self.peers.iter().any(walking) {
            // Every peer it fed is gone (restarted or dead): let it end on its own, unread.
            self.records.clear();
            if self.table.walk(generation, &mut self.records, usize::MAX) {
                self.walk = None;
            }
            return;
        }
        if !self.peers.iter().filter(|p| walking(p)).all(Peer::has_room) {
            return;
        }
        self.records.clear();
        let finished = self.table.walk(generation, &mut self.records, WALK_BATCH);
        for peer in self.peers.iter_mut().filter(|p| walking(p)) {
            for r in &self.records {
                peer.push(*r, true, now);
            }
            if finished {
                peer.walk_done();
            }
        }
        if finished {
            self.walk = None;
        }
    }

    fn liveness(&mut self, now: Instant) {
        for i in 0..self.peers.len() {
            let alive = self.peers[i].alive(now, self.s.dead_after);
            if alive == self.alive[i] {
                continue;
            }
            self.alive[i] = alive;
            let p = &self.peers[i];
            let node = p.node.map_or("?".to_owned(), |n| n.to_string());
            if alive {
                let line = format!("cluster: peer {} (node {node}) up", p.address);
                (self.log)(Level::Info, &line, &peer_fields(p.address, p.node, "up"));
            } else {
                let line = format!(
                    "cluster: peer {} (node {node}) dead after {:?} of silence; its sessions stay in service here",
                    p.address, self.s.dead_after
                );
                (self.log)(Level::Warning, &line, &peer_fields(p.address, p.node, "dead"));
                // What it did not acknowledge may be lost: resync it when it is back.
                let p = &mut self.peers[i];
                if p.bulk_out != BulkOut::Idle || p.backlog() > 0 {
                    p.needs_resync = true;
                }
            }
        }
    }

    fn send(&mut self, now: Instant) {
        let advert = lock(&self.shared.advert).clone();
        let hello = Hello {
            digest: advert.digest,
            sessions: self.table.sessions(),
            local_ips: advert.local_ips.iter().copied().take(super::wire::MAX_LOCAL_IPS).collect(),
        };
        for i in 0..self.peers.len() {
            let to = SocketAddrV4::new(self.peers[i].address, self.s.port);
            for message in self.peers[i].outgoing(self.local, &hello, self.s.hello, now) {
                encode(&message, &self.s.key, &mut self.buf);
                if self.socket.send_to(&self.buf, to).is_err() {
                    self.count("send_failed");
                }
            }
            // The digest: logged when it has differed for a while.
            let theirs = self.peers[i].hello.digest;
            if self.peers[i].node.is_some() && theirs != advert.digest && theirs != 0 {
                let since = *self.digest_since[i].get_or_insert(now);
                if now.duration_since(since) >= DIGEST_GRACE && !self.digest_logged[i] {
                    self.digest_logged[i] = true;
                    let line = format!(
                        "cluster: peer {} schedules from another input (digest {theirs:016x}, here {:016x}): \
                         check that every node lists the same services, backends and weights",
                        self.peers[i].address, advert.digest
                    );
                    self.log(Level::Warning, &line);
                }
            } else {
                self.digest_since[i] = None;
                self.digest_logged[i] = false;
            }
        }
    }

    fn publish(&mut self, now: Instant) {
        if !self.ready {
            let waited = now.saturating_duration_since(self.started);
            let heard_long_enough = waited >= self.s.dead_after * READY_MIN_DEAD_AFTERS;
            let tables_in = (0..self.peers.len()).all(|i| !self.alive[i] || !self.peers[i].want_bulk);
            if (heard_long_enough && tables_in) || waited >= READY_MAX {
                self.ready = true;
                let line = if tables_in {
                    "cluster: this node has the table of every live peer".to_owned()
                } else {
                    format!("cluster: gave up waiting for peers' tables after {READY_MAX:?}")
                };
                self.log(Level::Info, &line);
            }
        }
        let digest = lock(&self.shared.advert).digest;
        let peers = self
            .peers
            .iter()
            .enumerate()
            .map(|(i, p)| PeerStatus {
                address: p.address,
                node: p.node,
                up: self.alive[i],
                epoch: p.epoch,
                local_ips: p.hello.local_ips.clone(),
                sessions: p.hello.sessions,
                digest_matches: p.node.map(|_| p.hello.digest == digest),
                messages_in: p.stats.messages_in,
                messages_out: p.stats.messages_out,
                resends: p.stats.resends,
                records_in: p.stats.records_in,
                records_out: p.stats.records_out,
                dropped: p.stats.dropped.clone(),
                awaiting_bulk: p.want_bulk,
            })
            .collect();
        let mut status = lock(&self.shared.status);
        status.ready = self.ready;
        status.peers = peers;
        status.dropped = self.dropped.clone();
    }

    fn wait(&self) {
        let mut fd = libc::pollfd { fd: self.socket.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd for the length given; the timeout bounds the wait.
        unsafe { libc::poll(&mut fd, 1, POLL.as_millis() as libc::c_int) };
    }
}

/// The fields of a line about a peer: its address, node id (empty while unknown) and new state.
fn peer_fields(peer: Ipv4Addr, node: Option<u16>, state: &str) -> [(&'static str, String); 3] {
    let node = node.map_or_else(String::new, |n| n.to_string());
    [("peer", peer.to_string()), ("node", node), ("state", state.to_owned())]
}

#[cfg(test)]
mod tests;
