//! The appliance's side of `[cluster]`: the key and epoch read before anything starts, the
//! queues between the workers and the sync engine (`ctrlplane::sync::engine`), and what the
//! engine's `Table` is here: records to and from the workers' `SyncChannel`s.

use std::collections::VecDeque;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use ctrlplane::bgp::Log;
use ctrlplane::config::Cluster as ClusterConfig;
use ctrlplane::sync::engine::{Advert, ClusterStatus, Engine, Settings, Table};
use ctrlplane::sync::wire::{Key, SessionRecord};
use dataplane::counters::WorkerCounters;
use dataplane::session::{Endpoint, State};
use dataplane::sync::{SyncChannel, SyncCommand, SyncRecord, SyncSetup, WalkItem};

/// Commands kept for a worker whose queue is full, at most; beyond, records are dropped and
/// counted (peers refresh what lives).
const BACKLOG: usize = 1 << 20;

/// What `[cluster]` needs before DPDK starts: the key (a missing or short one is a start-up
/// error) and this start's epoch.
pub struct Prepared {
    pub key: Key,
    pub epoch: u64,
}

/// Reads the key file: its bytes, a trailing newline left out; at least 16.
pub fn prepare(config: &ClusterConfig) -> Result<Prepared, String> {
    let path = &config.key_file;
    let mut file = std::fs::File::open(path).map_err(|e| format!("[cluster] key_file {}: {e}", path.display()))?;
    let mut secret = Vec::new();
    file.read_to_end(&mut secret).map_err(|e| format!("[cluster] key_file {}: {e}", path.display()))?;
    while secret.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        secret.pop();
    }
    let key = Key::new(&secret).map_err(|e| format!("[cluster] key_file {}: {e}", path.display()))?;
    if let Ok(meta) = file.metadata() {
        if meta.permissions().mode() & 0o077 != 0 {
            warn!("[cluster] key_file {} can be read by others than its owner: chmod 600 it", path.display());
        }
    }
    let epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(1)
        .max(1);
    Ok(Prepared { key, epoch })
}

/// One channel per worker, and what each worker is given.
pub fn channels(config: &ClusterConfig, epoch: u64, workers: usize) -> (Vec<Arc<SyncChannel>>, Vec<SyncSetup>) {
    let channels: Vec<Arc<SyncChannel>> = (0..workers).map(|_| Arc::new(SyncChannel::default())).collect();
    let setups = channels
        .iter()
        .map(|c| SyncSetup { node: config.node, incarnation: epoch as u32, channel: c.clone() })
        .collect();
    (channels, setups)
}

/// The running sync.
pub struct Sync {
    engine: Engine,
}

impl Sync {
    /// Binds the sync socket (the exception path must be up: it is on an interface address)
    /// and starts the engine.
    pub fn start(
        config: &ClusterConfig,
        prepared: Prepared,
        channels: Vec<Arc<SyncChannel>>,
        counters: Vec<Arc<WorkerCounters>>,
    ) -> Result<Sync, String> {
        let settings = Settings {
            node: config.node,
            address: config.address,
            port: config.port,
            peers: config.peers.clone(),
            hello: config.hello,
            dead_after: config.dead_after,
            key: prepared.key,
            epoch: prepared.epoch,
        };
        let log: Log = crate::logging::control_plane("cluster");
        let table = Workers::new(channels, counters);
        let engine = Engine::start(settings, table, log)?;
        info!(
            "cluster: node {} syncing on {}:{} with {}",
            config.node,
            config.address,
            config.port,
            config.peers.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
        );
        Ok(Sync { engine })
    }

    pub fn advertise(&self, local_ips: Vec<Ipv4Addr>, digest: u64) {
        self.engine.set_advert(Advert { local_ips, digest });
    }

    pub fn status(&self) -> ClusterStatus {
        self.engine.status()
    }
}

/// One pass of the control loop: tells peers this node's local IPs and scheduler digest,
/// gives the model the peers' local IPs (the data path takes their replies); returns those
/// (announced as backups) and whether this node still waits for its peers' tables.
pub fn pass(sync: &Sync, control: &mut super::control::Control) -> (Vec<Ipv4Addr>, bool) {
    let status = sync.status();
    let mut own: Vec<Ipv4Addr> = control.model().local_ips().collect();
    own.sort_unstable();
    own.dedup();
    sync.advertise(own.clone(), control.model().digest());
    let mut peers: Vec<Ipv4Addr> =
        status.peers.iter().flat_map(|p| p.local_ips.iter().copied()).filter(|ip| !own.contains(ip)).collect();
    peers.sort_unstable();
    peers.dedup();
    control.change(|m| m.set_peer_local_ips(peers.clone()));
    (peers, !status.ready)
}

/// Copies held for `node`: every worker holds a copy of each, so the workers' mean.
fn held(counters: &[Arc<WorkerCounters>], node: Option<u16>) -> u64 {
    let Some(node) = node else { return 0 };
    let all: u64 = counters
        .iter()
        .flat_map(|c| c.sync_held.iter())
        .filter(|h| h.node.load(std::sync::atomic::Ordering::Relaxed) == u32::from(node))
        .map(|h| h.count.get())
        .sum();
    all / counters.len().max(1) as u64
}

/// The `status` document's cluster part.
pub fn status(s: &ClusterStatus, counters: &[Arc<WorkerCounters>]) -> ctrlplane::api::ClusterStatus {
    let owned = |d: &[(&'static str, u64)]| d.iter().map(|(r, n)| ((*r).to_owned(), *n)).collect();
    ctrlplane::api::ClusterStatus {
        node: s.node,
        epoch: s.epoch,
        ready: s.ready,
        peers: s
            .peers
            .iter()
            .map(|p| ctrlplane::api::PeerStatus {
                address: p.address.to_string(),
                node: p.node,
                up: p.up,
                epoch: p.epoch,
                sessions_held: held(counters, p.node),
                sessions_reported: p.sessions,
                local_ips: p.local_ips.iter().map(ToString::to_string).collect(),
                digest_matches: p.digest_matches,
                messages_in: p.messages_in,
                messages_out: p.messages_out,
                records_in: p.records_in,
                records_out: p.records_out,
                resends: p.resends,
                dropped: owned(&p.dropped),
                awaiting_bulk: p.awaiting_bulk,
            })
            .collect(),
        dropped: owned(&s.dropped),
    }
}

/// The metrics of every peer (and of what came from none, as peer `unknown`).
pub fn sample(s: &ClusterStatus, counters: &[Arc<WorkerCounters>]) -> Vec<ctrlplane::metrics::PeerSample> {
    let owned = |d: &[(&'static str, u64)]| d.iter().map(|(r, n)| ((*r).to_owned(), *n)).collect();
    let mut out: Vec<ctrlplane::metrics::PeerSample> = s
        .peers
        .iter()
        .map(|p| ctrlplane::metrics::PeerSample {
            peer: p.address.to_string(),
            up: p.up,
            sessions: held(counters, p.node),
            messages_in: p.messages_in,
            messages_out: p.messages_out,
            records_in: p.records_in,
            records_out: p.records_out,
            resends: p.resends,
            dropped: owned(&p.dropped),
        })
        .collect();
    if !s.dropped.is_empty() {
        out.push(ctrlplane::metrics::PeerSample {
            peer: "unknown".to_owned(),
            dropped: owned(&s.dropped),
            ..Default::default()
        });
    }
    out
}

/// The engine's `Table`: the workers, through their channels.
struct Workers {
    channels: Vec<Arc<SyncChannel>>,
    counters: Vec<Arc<WorkerCounters>>,
    /// Per worker: commands that did not fit its queue yet.
    backlog: Vec<VecDeque<SyncCommand>>,
    /// Per worker: the walk it finished last.
    walked: Vec<Option<u32>>,
    lost_seen: u64,
    dropped: u64,
}

impl Workers {
    fn new(channels: Vec<Arc<SyncChannel>>, counters: Vec<Arc<WorkerCounters>>) -> Workers {
        let n = channels.len();
        Workers {
            channels,
            counters,
            backlog: vec![VecDeque::new(); n],
            walked: vec![None; n],
            lost_seen: 0,
            dropped: 0,
        }
    }

    /// Hands `command` to worker `w`, after what waits for it.
    fn post(&mut self, w: usize, command: SyncCommand) {
        if self.backlog[w].is_empty() && self.channels[w].commands.push(command).is_ok() {
            return;
        }
        if self.backlog[w].len() >= BACKLOG {
            self.dropped += 1;
            return;
        }
        self.backlog[w].push_back(command);
    }

    fn flush_backlogs(&mut self) {
        for (w, backlog) in self.backlog.iter_mut().enumerate() {
            while let Some(&command) = backlog.front() {
                if self.channels[w].commands.push(command).is_err() {
                    break;
                }
                backlog.pop_front();
            }
        }
    }
}

impl Table for Workers {
    fn apply(&mut self, records: &[SessionRecord]) {
        for r in records {
            let Some(record) = from_wire(r) else { continue };
            for w in 0..self.channels.len() {
                self.post(w, SyncCommand::Upsert(record));
            }
        }
    }

    fn updates(&mut self, out: &mut Vec<SessionRecord>, max: usize) {
        self.flush_backlogs();
        for channel in &self.channels {
            while out.len() < max {
                let Some(r) = channel.updates.pop() else { break };
                out.push(to_wire(&r));
            }
        }
    }

    fn start_walk(&mut self, generation: u32) {
        for w in 0..self.channels.len() {
            self.walked[w] = None;
            self.post(w, SyncCommand::Walk(generation));
        }
    }

    fn walk(&mut self, generation: u32, out: &mut Vec<SessionRecord>, max: usize) -> bool {
        for (w, channel) in self.channels.iter().enumerate() {
            while out.len() < max {
                match channel.walk.pop() {
                    Some(WalkItem::Record(g, r)) if g == generation => out.push(to_wire(&r)),
                    Some(WalkItem::Done(g)) => self.walked[w] = Some(g),
                    Some(WalkItem::Record(..)) => {} // of an earlier walk
                    None => break,
                }
            }
        }
        self.walked.iter().all(|w| *w == Some(generation))
    }

    fn sessions(&self) -> u32 {
        let n: u64 = self.counters.iter().flat_map(|c| c.services.iter().map(|s| s.sessions.get())).sum();
        n.min(u64::from(u32::MAX)) as u32
    }

    fn lost(&mut self) -> u64 {
        let now: u64 = self.counters.iter().map(|c| c.sync_lost.get()).sum::<u64>() + self.dropped;
        let new = now - self.lost_seen.min(now);
        self.lost_seen = now;
        new
    }
}

fn endpoint(e: Endpoint) -> SocketAddrV4 {
    SocketAddrV4::new(e.ip, e.port)
}

fn from_endpoint(a: SocketAddrV4) -> Endpoint {
    Endpoint::new(*a.ip(), a.port())
}

fn to_wire(r: &SyncRecord) -> SessionRecord {
    SessionRecord {
        proto: r.proto,
        state: r.state as u8,
        owner: r.owner,
        incarnation: r.incarnation,
        client: endpoint(r.client),
        vip: endpoint(r.vip),
        local: endpoint(r.local),
        backend: endpoint(r.backend),
        idle_ms: r.idle_ms,
    }
}

/// A record the wire decoder accepted (protocol and state agree) in the data path's terms.
fn from_wire(r: &SessionRecord) -> Option<SyncRecord> {
    let state = *State::ALL.get(usize::from(r.state))?;
    Some(SyncRecord {
        proto: r.proto,
        state,
        owner: r.owner,
        incarnation: r.incarnation,
        client: from_endpoint(r.client),
        vip: from_endpoint(r.vip),
        local: from_endpoint(r.local),
        backend: from_endpoint(r.backend),
        idle_ms: r.idle_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_cross_between_wire_and_data_path_unchanged() {
        let r = SyncRecord {
            proto: 6,
            state: State::TcpEstablished,
            owner: 3,
            incarnation: 77,
            client: Endpoint::new(Ipv4Addr::new(198, 18, 2, 2), 40000),
            vip: Endpoint::new(Ipv4Addr::new(198, 18, 10, 10), 80),
            local: Endpoint::new(Ipv4Addr::new(198, 18, 12, 1), 1024),
            backend: Endpoint::new(Ipv4Addr::new(198, 18, 1, 2), 80),
            idle_ms: 12,
        };
        assert_eq!(from_wire(&to_wire(&r)), Some(r));
        assert_eq!(to_wire(&r).state, 2);
        assert_eq!(from_wire(&SessionRecord { state: 9, ..to_wire(&r) }), None);
    }

    #[test]
    fn a_short_or_missing_key_is_refused() {
        let dir = std::env::temp_dir().join(format!("sluice-key-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = |name: &str| ClusterConfig {
            node: 1,
            address: Ipv4Addr::new(198, 18, 0, 11),
            peers: vec![],
            port: 8849,
            key_file: dir.join(name),
            hello: std::time::Duration::from_millis(100),
            dead_after: std::time::Duration::from_millis(500),
        };
        std::fs::write(dir.join("short"), "too short\n").unwrap();
        std::fs::write(dir.join("good"), "0123456789abcdef0123\n").unwrap();
        let e = prepare(&config("missing")).err().unwrap();
        assert!(e.contains("key_file") && e.contains("No such file"), "{e}");
        let e = prepare(&config("short")).err().unwrap();
        assert!(e.contains("9 bytes; at least 16"), "{e}");
        let p = prepare(&config("good")).expect("good key");
        assert!(p.epoch > 1_700_000_000_000_000, "microseconds of the clock");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
