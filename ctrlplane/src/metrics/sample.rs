//! One reading of every metric, as plain values: what the appliance gathers (summing the
//! workers' own counters) and `render` turns into the text exposition.
//!
//! Each family is one `Vec` of rows, each row its label values and its value. Counters are
//! absolute totals since start, never deltas. A family with no rows is left out of the output
//! (as Prometheus client libraries do with a labelled metric that has no series yet).

/// Everything one scrape shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    /// `sluice_build_info{version}`: what `sluice --version` prints.
    pub version: String,
    /// `sluice_port_packets_total{interface,direction}`.
    pub port_packets: Vec<PortCount>,
    /// `sluice_port_bytes_total{interface,direction}`.
    pub port_bytes: Vec<PortCount>,
    /// `sluice_port_dropped_total{interface,reason}`.
    pub port_dropped: Vec<PortDrops>,
    /// `sluice_port_steering{interface,mode}`: 1 for the mode in use.
    pub port_steering: Vec<PortSteering>,
    /// `sluice_packets_dropped_total{worker,reason}`.
    pub packets_dropped: Vec<WorkerDrops>,
    /// `sluice_worker_busy_ratio{worker}`.
    pub worker_busy: Vec<WorkerBusy>,
    /// `sluice_worker_cycles_per_packet{worker,part}`.
    pub worker_cycles: Vec<WorkerCycles>,
    pub worker_redirected: Vec<WorkerRedirected>,
    /// `sluice_sessions{service,worker}`.
    pub sessions: Vec<ServiceSessions>,
    /// `sluice_sessions_created_total{service}`.
    pub sessions_created: Vec<ServiceCount>,
    /// `sluice_client_address_total{service,result}`: services with `client_address` only.
    pub client_address: Vec<ServiceResultCount>,
    /// `sluice_synproxy_total{service,result}`: services with `synproxy` only.
    pub synproxy: Vec<ServiceResultCount>,
    /// `sluice_sessions_expired_total{worker}`.
    pub sessions_expired: Vec<WorkerCount>,
    /// `sluice_sessions_evicted_total{worker}`: unconfirmed sessions that made way for a new flow.
    pub sessions_evicted: Vec<WorkerCount>,
    /// `sluice_icmp_errors_relayed_total{worker}`.
    pub icmp_relayed: Vec<WorkerCount>,
    /// `sluice_worker_longest_loop_seconds{worker}`: the longest poll loop since start.
    pub longest_loop: Vec<WorkerSeconds>,
    /// `sluice_worker_loops_total{worker}`: poll loops run (idle or not).
    pub loops: Vec<WorkerCount>,
    /// `sluice_worker_packet_wait_seconds{worker}`: a histogram of packets by the longest they
    /// can have been in the worker.
    pub packet_wait: Vec<WorkerHistogram>,
    /// `sluice_neighbours{worker}`: entries in each worker's neighbour table.
    pub neighbours: Vec<WorkerCount>,
    /// `sluice_mbufs_available`: free mbufs in the pool (per-core caches included).
    pub mbufs_available: Option<u64>,
    /// `sluice_backend_up{service,backend}`.
    pub backend_up: Vec<BackendUp>,
    /// `sluice_backend_weight{service,backend}`.
    pub backend_weight: Vec<BackendWeight>,
    /// `sluice_backend_packets_total{service,backend,direction}`.
    pub backend_packets: Vec<BackendCount>,
    /// `sluice_backend_bytes_total{service,backend,direction}`.
    pub backend_bytes: Vec<BackendCount>,
    /// `sluice_health_checks_total{service,backend,result}`.
    pub health_checks: Vec<HealthChecks>,
    /// `sluice_local_ports_free{local_ip}`.
    pub local_ports_free: Vec<LocalPortsFree>,
    /// `sluice_bgp_neighbor_up{neighbor}` (with `[bgp]`).
    pub bgp_neighbor_up: Vec<NeighborUp>,
    /// `sluice_route_announced{prefix}`: every /32 the node may announce (with `[bgp]`).
    pub route_announced: Vec<RouteAnnounced>,
    /// `sluice_bird_restarts_total` (with `[bgp]`).
    pub bird_restarts: Option<u64>,
    /// With `[cluster]`, per peer: `sluice_cluster_peer_up{peer}`, `sluice_sync_sessions{peer}`,
    /// `sluice_sync_messages_total{peer,direction}`, `sluice_sync_records_total{peer,direction}`,
    /// `sluice_sync_resends_total{peer}`, `sluice_sync_dropped_total{peer,reason}`.
    pub peers: Vec<PeerSample>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct PeerSample {
    /// The peer's sync address (`unknown` for what came from no peer).
    pub peer: String,
    pub up: bool,
    pub sessions: u64,
    pub messages_in: u64,
    pub messages_out: u64,
    pub records_in: u64,
    pub records_out: u64,
    pub resends: u64,
    pub dropped: Vec<(String, u64)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NeighborUp {
    /// The neighbour's address.
    pub neighbor: String,
    pub up: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RouteAnnounced {
    /// `198.18.10.10/32`.
    pub prefix: String,
    pub announced: bool,
}

/// Which way a port counter counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortDirection {
    Rx,
    Tx,
}

impl PortDirection {
    pub fn label(self) -> &'static str {
        match self {
            PortDirection::Rx => "rx",
            PortDirection::Tx => "tx",
        }
    }
}

/// Which way a backend counter counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendDirection {
    ToBackend,
    FromBackend,
}

impl BackendDirection {
    pub fn label(self) -> &'static str {
        match self {
            BackendDirection::ToBackend => "to_backend",
            BackendDirection::FromBackend => "from_backend",
        }
    }
}

/// How a health check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckResult {
    Ok,
    Fail,
}

impl CheckResult {
    pub fn label(self) -> &'static str {
        match self {
            CheckResult::Ok => "ok",
            CheckResult::Fail => "fail",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PortCount {
    /// The `[[interface]]` name.
    pub interface: String,
    pub direction: PortDirection,
    pub value: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PortDrops {
    pub interface: String,
    /// `imissed`, `nombuf`, `rx_errors`, `tx_errors`, `tx_full`, ...
    pub reason: String,
    pub value: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PortSteering {
    pub interface: String,
    /// `flow`, `rss` or `redirect`: the mode `auto` settled on, or the one configured.
    pub mode: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WorkerDrops {
    pub worker: usize,
    /// The data path's drop reason (`no_session`, `ttl_exceeded`, ...).
    pub reason: String,
    pub value: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WorkerCount {
    pub worker: usize,
    pub value: u64,
}

/// A histogram of one worker's: per bucket, its upper bound in seconds and how many
/// observations were at most that (cumulative, as the exposition has them); then all of them
/// and their sum.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerHistogram {
    pub worker: usize,
    pub buckets: Vec<(f64, u64)>,
    pub count: u64,
    pub sum_seconds: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WorkerSeconds {
    pub worker: usize,
    pub seconds: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WorkerBusy {
    pub worker: usize,
    /// Share of poll cycles that found work, 0.0..=1.0.
    pub ratio: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WorkerCycles {
    pub worker: usize,
    /// "own": Sluice's work on the packets; "driver": inside the drivers' receive and transmit.
    pub part: &'static str,
    /// TSC cycles of loops that found work, per packet received, over the last second.
    pub cycles: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServiceSessions {
    pub service: String,
    pub worker: usize,
    pub value: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServiceCount {
    pub service: String,
    pub value: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServiceResultCount {
    pub service: String,
    /// client_address: added | fragmented | too_big | no_room | resent | reset | sack_dropped;
    /// synproxy: sent | valid | invalid
    pub result: &'static str,
    pub value: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BackendUp {
    pub service: String,
    /// `IP:PORT`.
    pub backend: String,
    pub up: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BackendWeight {
    pub service: String,
    pub backend: String,
    pub weight: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BackendCount {
    pub service: String,
    pub backend: String,
    pub direction: BackendDirection,
    pub value: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HealthChecks {
    pub service: String,
    pub backend: String,
    pub result: CheckResult,
    pub value: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LocalPortsFree {
    /// A FULLNAT local IP.
    pub local_ip: String,
    pub value: u64,
}

/// `sluice_worker_redirected_total{worker,direction}`: direction is "out" or "in".
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerRedirected {
    pub worker: usize,
    pub direction: &'static str,
    pub value: u64,
}
