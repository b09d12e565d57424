//! The documents the API replies with, as the `data` of `{"ok":true,"data":...}`.
//!
//! Each command has its own: `status` a `Status`, `services` a list of `ServiceStatus`,
//! `backend` the `BackendStatus` after the change, `sessions` a list of `SessionRow`,
//! `reload` a `ReloadReport`. Readers ignore fields they do not know, so the appliance may
//! add fields without breaking an older `sluicectl`.

use serde::{Deserialize, Serialize};

/// `sluicectl status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// What `sluice --version` prints.
    pub version: String,
    pub uptime_seconds: u64,
    pub workers: Vec<WorkerStatus>,
    pub ports: Vec<PortStatus>,
    /// Sessions in all workers' tables.
    pub sessions: u64,
    /// With `[bgp]`: BIRD, the neighbours and what is announced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bgp: Option<BgpStatus>,
    /// With `[cluster]`: this node and its peers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterStatus>,
}

/// `[cluster]` at work, in `status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterStatus {
    pub node: u16,
    pub epoch: u64,
    /// This node has every live peer's sessions (until then it announces nothing).
    pub ready: bool,
    pub peers: Vec<PeerStatus>,
    /// Datagrams refused before a peer could be named (`unknown_peer`, `node_conflict`, ...).
    pub dropped: Vec<(String, u64)>,
}

/// One peer of the cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerStatus {
    pub address: String,
    pub node: Option<u16>,
    pub up: bool,
    pub epoch: Option<u64>,
    /// Copies of its sessions this node holds.
    pub sessions_held: u64,
    /// Sessions it says it holds.
    pub sessions_reported: u32,
    pub local_ips: Vec<String>,
    pub digest_matches: Option<bool>,
    pub messages_in: u64,
    pub messages_out: u64,
    pub records_in: u64,
    pub records_out: u64,
    pub resends: u64,
    /// By reason: `bad_mac`, `replay`, `stale_epoch`, `malformed`, `overflow`, `dead`, ...
    pub dropped: Vec<(String, u64)>,
    /// Its whole table has not arrived yet.
    pub awaiting_bulk: bool,
}

/// `[bgp]` at work: `status`, `drain-node` and `undrain-node` show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BgpStatus {
    pub local_as: u32,
    pub router_id: String,
    /// `running`, `restarting` or `stopped`.
    pub bird: String,
    /// Times BIRD was started again after it exited.
    pub bird_restarts: u64,
    /// `sluicectl drain-node` is in force.
    pub drained: bool,
    pub neighbors: Vec<NeighborStatus>,
    /// Every /32 this node may announce.
    pub routes: Vec<RouteStatus>,
}

/// One BGP neighbour, as BIRD's `show protocols` has it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NeighborStatus {
    pub address: String,
    pub remote_as: u32,
    /// The session is established.
    pub up: bool,
    /// BIRD's protocol state (`up`, `start`, `down`) and its info (`Established`, `Active`,
    /// what failed last).
    pub state: String,
    pub info: String,
}

/// One /32 this node may announce.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteStatus {
    /// `198.18.10.10/32`.
    pub prefix: String,
    /// `vip` or `local_ip`.
    pub kind: String,
    /// BIRD announces it now.
    pub announced: bool,
    /// Why it is not announced: `no_quorum`, `drained`, `stopping`, `worker_stalled`; or
    /// `bird_not_running` / `pending` while BIRD has not taken the change yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub withdrawn: Option<String>,
}

/// One poll-mode worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerStatus {
    pub id: usize,
    /// The lcore it is pinned to.
    pub cpu: usize,
    /// Share of poll cycles that found work, 0.0..=1.0.
    pub busy_ratio: f64,
}

/// One DPDK port, under its configured interface name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PortStatus {
    /// The `[[interface]]` name (`wan`, `lan`).
    pub name: String,
    /// The DPDK device name or PCI address.
    pub device: String,
    /// The PMD driving it (`net_af_packet`, `net_ixgbe`, ...).
    pub driver: String,
    /// How replies reach the worker owning their local IP (`flow`, `rss`, `redirect`).
    pub steering: String,
    pub rx_pps: f64,
    pub tx_pps: f64,
    pub rx_packets: u64,
    pub tx_packets: u64,
    /// Everything the port dropped (missed, no mbuf, errors).
    pub dropped: u64,
}

/// `sluicectl services`: one service and its backends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceStatus {
    pub name: String,
    /// `udp` or `tcp`.
    pub protocol: String,
    /// `IP:PORT`.
    pub vip: String,
    /// `rr`, `wrr`, `wlc`, `sh`, `maglev`.
    pub scheduler: String,
    pub per_packet: bool,
    pub backends: Vec<BackendStatus>,
}

/// One backend of a service, with its counters summed over the workers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendStatus {
    /// `IP:PORT`.
    pub address: String,
    pub weight: u32,
    /// `up`, `down` or `draining`.
    pub state: String,
    pub active_sessions: u64,
    pub packets_to_backend: u64,
    pub packets_from_backend: u64,
    pub bytes_to_backend: u64,
    pub bytes_from_backend: u64,
    /// Sessions opened to it since it joined (LVS's Conns).
    #[serde(default)]
    pub connections: u64,
    /// The same five counters per second over the last second (LVS's CPS, InPPS, OutPPS,
    /// InBPS, OutBPS).
    #[serde(default)]
    pub rates: Rates,
}

/// Per-second rates over the last second: sessions opened, packets and bytes each way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Rates {
    pub connections: f64,
    pub packets_to_backend: f64,
    pub packets_from_backend: f64,
    pub bytes_to_backend: f64,
    pub bytes_from_backend: f64,
}

/// `sluicectl sessions`: one session of one worker's table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRow {
    pub service: String,
    /// `IP:PORT` of each end: the client, the VIP it asked, the local address and port the
    /// balancer uses towards the backend, and the backend.
    pub client: String,
    pub vip: String,
    pub local: String,
    pub backend: String,
    /// `syn`, `established`, `closing`, `udp`, ...
    pub state: String,
    pub age_seconds: u64,
}

/// `sluicectl reload`: what a reload changed, or why nothing changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReloadReport {
    pub changed: bool,
    /// One line per change ("service dns: backend 198.18.1.3:53 added"); when nothing changed,
    /// the reason ("the config file is unchanged").
    pub changes: Vec<String>,
}
