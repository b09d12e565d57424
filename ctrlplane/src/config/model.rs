//! The validated configuration: plain values with every default applied.
//!
//! Nothing here knows about TOML or positions; `resolve` builds these types only after
//! every check has passed, so a consumer can trust them without checking again.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::time::Duration;

use super::diagnostic::Diagnostic;
use super::ipv4net::Ipv4Net;

/// A whole, valid config file.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub dpdk: Dpdk,
    pub cpu: Cpu,
    pub api: Api,
    pub sessions: Sessions,
    pub steering: Steering,
    pub timeouts: Timeouts,
    pub interfaces: Vec<Interface>,
    pub routes: Vec<Route>,
    pub services: Vec<Service>,
    /// `[bgp]`: absent, nothing is announced and no routing daemon runs.
    pub bgp: Option<Bgp>,
    /// `[cluster]`: absent, a single node that syncs no sessions.
    pub cluster: Option<Cluster>,
    /// Problems that do not stop the appliance (a worker on the control core, ...).
    pub warnings: Vec<Diagnostic>,
}

/// `[dpdk]`: how the EAL is started.
#[derive(Debug, Clone, PartialEq)]
pub struct Dpdk {
    /// Extra EAL arguments, passed through as written.
    pub args: Vec<String>,
    /// False runs the EAL with `--no-huge`.
    pub hugepages: bool,
    /// Mbuf pool size per NUMA socket.
    pub mbufs: u32,
}

impl Default for Dpdk {
    fn default() -> Self {
        Dpdk { args: Vec::new(), hugepages: true, mbufs: 16383 }
    }
}

/// `[cpu]`: which cores do what.
#[derive(Debug, Clone, PartialEq)]
pub struct Cpu {
    /// The housekeeping core: control plane, health checks, API, metrics.
    pub control: usize,
    /// One poll-mode worker per entry, in queue order.
    pub workers: Vec<usize>,
    pub idle: IdleMode,
}

impl Default for Cpu {
    fn default() -> Self {
        Cpu { control: 0, workers: vec![1], idle: IdleMode::Busy }
    }
}

/// What a worker does when a poll finds no packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleMode {
    /// Poll again at once (the appliance default).
    Busy,
    /// Back off to short sleeps while idle.
    Adaptive,
}

/// `[api]`: where the daemon listens.
#[derive(Debug, Clone, PartialEq)]
pub struct Api {
    /// The control socket of `sluicectl`, an absolute path.
    pub socket: PathBuf,
    /// The Prometheus endpoint.
    pub metrics: SocketAddr,
}

impl Default for Api {
    fn default() -> Self {
        Api { socket: PathBuf::from("/run/sluice/sluice.sock"), metrics: SocketAddr::from((Ipv4Addr::LOCALHOST, 9273)) }
    }
}

/// `[sessions]`: the session tables.
#[derive(Debug, Clone, PartialEq)]
pub struct Sessions {
    /// Sessions per worker, preallocated at start.
    pub capacity: u32,
    /// What a new flow does when the table or its local IP's ports are full.
    pub when_full: WhenFull,
}

impl Default for Sessions {
    fn default() -> Self {
        Sessions { capacity: 1 << 20, when_full: WhenFull::Evict }
    }
}

/// `[sessions] when_full`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenFull {
    /// It takes the place of the oldest unconfirmed session (a handshake not finished, a UDP
    /// flow of one datagram): conntrack's early drop.
    Evict,
    /// It is refused.
    Drop,
}

/// `[steering]`: how replies reach the worker that owns their local IP.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Steering {
    pub mode: SteeringMode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SteeringMode {
    /// Pick the best the NIC offers.
    #[default]
    Auto,
    /// rte_flow rules on the local IPs.
    Flow,
    /// RSS alone (symmetric hashing).
    Rss,
    /// Software redirect between workers.
    Redirect,
}

/// `[timeouts]`: session idle timeouts.
#[derive(Debug, Clone, PartialEq)]
pub struct Timeouts {
    /// A SYN seen, the handshake not finished.
    pub tcp_syn: Duration,
    pub tcp_established: Duration,
    /// The client sent FIN; the backend may still answer.
    pub tcp_fin_wait: Duration,
    /// The backend sent FIN; the client may still send.
    pub tcp_close_wait: Duration,
    /// Both sent FIN, the last ACK not seen.
    pub tcp_last_ack: Duration,
    /// Closed both ways and acknowledged.
    pub tcp_time_wait: Duration,
    /// Reset by either side (or a FIN before the handshake finished).
    pub tcp_closing: Duration,
    /// A UDP flow that sent more than one datagram.
    pub udp: Duration,
    /// A UDP flow of one datagram so far.
    pub udp_new: Duration,
}

impl Timeouts {
    /// Every timeout, in the order of the fields.
    pub fn all(&self) -> [Duration; 9] {
        [
            self.tcp_syn,
            self.tcp_established,
            self.tcp_fin_wait,
            self.tcp_close_wait,
            self.tcp_last_ack,
            self.tcp_time_wait,
            self.tcp_closing,
            self.udp,
            self.udp_new,
        ]
    }
}

impl Default for Timeouts {
    /// LVS's TCP timeouts (FIN_WAIT 2 min, CLOSE_WAIT 1 min, LAST_ACK 30 s), a shorter
    /// TIME_WAIT (it holds a local port), and short ones for unconfirmed flows.
    fn default() -> Self {
        Timeouts {
            tcp_syn: Duration::from_secs(30),
            tcp_established: Duration::from_secs(15 * 60),
            tcp_fin_wait: Duration::from_secs(120),
            tcp_close_wait: Duration::from_secs(60),
            tcp_last_ack: Duration::from_secs(30),
            tcp_time_wait: Duration::from_secs(10),
            tcp_closing: Duration::from_secs(10),
            udp: Duration::from_secs(30),
            udp_new: Duration::from_secs(10),
        }
    }
}

/// `[[interface]]`: one DPDK port and the host addresses on its link.
#[derive(Debug, Clone, PartialEq)]
pub struct Interface {
    /// The kernel-side name (a valid Linux ifname).
    pub name: String,
    /// A DPDK device name, a PCI address, or `af_xdp:IFNAME`, as written.
    pub device: String,
    /// The host's own addresses; each also makes its prefix a connected route.
    pub addresses: Vec<Ipv4Net>,
}

/// How `device` names a kernel interface driven through AF_XDP.
pub const AF_XDP_PREFIX: &str = "af_xdp:";

impl Interface {
    /// The kernel interface of an `af_xdp:IFNAME` device.
    pub fn af_xdp(&self) -> Option<&str> {
        self.device.strip_prefix(AF_XDP_PREFIX)
    }

    /// The name DPDK knows the port by: `device`, or for `af_xdp:IFNAME` the vdev Sluice
    /// creates for it (`net_af_xdp_` and the interface's name).
    pub fn dpdk_device(&self) -> String {
        match self.af_xdp() {
            Some(_) => format!("net_af_xdp_{}", self.name),
            None => self.device.clone(),
        }
    }

    /// For `af_xdp:IFNAME`, the EAL's `--vdev` argument: one AF_XDP socket per worker on the
    /// kernel interface's queues 0 to workers - 1, and the PMD's preferred busy polling off
    /// (`busy_budget=0`): with it on, every empty poll of a worker is a system call, which costs
    /// a polling worker more than it gains (docs/operations.md, "af_xdp ports").
    pub fn af_xdp_vdev(&self, workers: usize) -> Option<String> {
        let kernel = self.af_xdp()?;
        Some(format!(
            "--vdev={},iface={kernel},start_queue=0,queue_count={},busy_budget=0",
            self.dpdk_device(),
            workers.max(1)
        ))
    }
}

/// `[[route]]`: a static route; `via` is on a connected prefix.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// A network address: no host bits set.
    pub prefix: Ipv4Net,
    pub via: Ipv4Addr,
}

/// `[[service]]`: one virtual service and its backends.
#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    pub name: String,
    pub vip: SocketAddrV4,
    pub protocol: Protocol,
    pub scheduler: Scheduler,
    /// One-packet scheduling (udp only): every datagram picks a backend.
    pub per_packet: bool,
    /// FULLNAT source addresses, at least one per worker.
    pub local_ips: Vec<Ipv4Addr>,
    /// With fewer healthy backends the VIP stops answering.
    pub min_active: u32,
    pub client_address: ClientAddress,
    /// TCP: SYNs are answered with cookies; only a completed handshake reaches a backend.
    pub synproxy: bool,
    /// What new sessions may open (0: no limit).
    pub limits: Limits,
    /// Client prefixes that may open sessions (empty: everyone), and those that may not
    /// (checked first).
    pub allow: Vec<Ipv4Net>,
    pub deny: Vec<Ipv4Net>,
    pub health: Health,
    pub backends: Vec<Backend>,
}

/// Limits on a service's new sessions; 0 is no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    /// Sessions of the service at once, over all workers.
    pub max_sessions: u32,
    /// New sessions a second, over all workers.
    pub new_sessions_per_second: u32,
    /// New sessions a second from one client address.
    pub per_client_new_sessions_per_second: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Udp,
    Tcp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheduler {
    /// Round robin.
    Rr,
    /// Weighted round robin.
    Wrr,
    /// Weighted least connections.
    Wlc,
    /// Source hashing.
    Sh,
    /// Maglev consistent hashing.
    Maglev,
}

/// How a backend learns the client's address, which FULLNAT hides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAddress {
    None,
    /// A PROXY protocol v2 header at the start of each TCP stream, before each UDP datagram.
    ProxyV2,
    /// TCP option 254 (client port and address) on the client's segments (tcp only).
    Toa,
}

/// `[service.health]`: how backends are checked.
///
/// For `http` checks the defaults are filled in here: an empty `send` becomes `/`
/// and an empty `expect` becomes `200`.
#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    pub check: CheckKind,
    pub interval: Duration,
    /// At most `interval`.
    pub timeout: Duration,
    /// Successes in a row that bring a backend up.
    pub rise: u32,
    /// Failures in a row that bring a backend down.
    pub fall: u32,
    /// udp: the payload sent; http: the request path.
    pub send: String,
    /// udp: the prefix the reply must start with; http: the status code.
    pub expect: String,
    pub on_failure: OnFailure,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            check: CheckKind::None,
            interval: Duration::from_secs(1),
            timeout: Duration::from_millis(500),
            rise: 2,
            fall: 2,
            send: String::new(),
            expect: String::new(),
            on_failure: OnFailure::Inhibit,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckKind {
    /// Backends are always up.
    None,
    /// A TCP connect.
    Tcp,
    /// A datagram out, a reply with the expected prefix back.
    Udp,
    /// An HTTP GET, a status code back.
    Http,
}

/// What happens to a backend that fails its checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    /// Weight 0: no new sessions, its sessions live on.
    Inhibit,
    /// Out of the service, its sessions dropped too.
    Remove,
}

/// `[[service.backend]]`: one real server.
#[derive(Debug, Clone, PartialEq)]
pub struct Backend {
    pub address: SocketAddrV4,
    /// 0..=65535; 0 takes no new sessions.
    pub weight: u32,
}

/// `[bgp]`: the VIPs (and local IPs) this node announces to its routers, through BIRD.
#[derive(Debug, Clone, PartialEq)]
pub struct Bgp {
    pub local_as: u32,
    pub router_id: Ipv4Addr,
    /// The BGP hold time: whole seconds, 3 or more (RFC 4271 4.2).
    pub hold: Duration,
    /// BFD on every neighbour.
    pub bfd: bool,
    /// BFD's transmit and receive interval, and how many missed make a neighbour dead.
    pub bfd_interval: Duration,
    pub bfd_multiplier: u32,
    /// The BIRD 2 binary: a path, or a name looked up in `PATH`.
    pub bird: PathBuf,
    /// Where BIRD's generated config and its control socket live: an absolute path.
    pub runtime_dir: PathBuf,
    /// Own local IPs as /32 routes, so that backends' replies find this node.
    pub announce_local_ips: bool,
    /// After the VIPs are withdrawn on SIGTERM, the data path forwards this long; may be zero.
    pub drain: Duration,
    /// At least one; no address twice.
    pub neighbors: Vec<BgpNeighbor>,
}

impl Bgp {
    /// The defaults of every key that has one.
    pub fn defaults(local_as: u32, router_id: Ipv4Addr) -> Bgp {
        Bgp {
            local_as,
            router_id,
            hold: Duration::from_secs(3),
            bfd: true,
            bfd_interval: Duration::from_millis(100),
            bfd_multiplier: 5,
            bird: PathBuf::from("bird"),
            runtime_dir: PathBuf::from("/run/sluice/bird"),
            announce_local_ips: true,
            drain: Duration::from_secs(2),
            neighbors: Vec::new(),
        }
    }
}

/// `[[bgp.neighbor]]`: one router this node peers with, on a connected network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BgpNeighbor {
    pub address: Ipv4Addr,
    pub remote_as: u32,
    /// TCP MD5 signature key (RFC 2385).
    pub password: Option<String>,
}

/// `[cluster]`: the other nodes this one shares its sessions with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    /// 1..=65535, unique in the cluster.
    pub node: u16,
    /// This node's sync address: one of its interface addresses.
    pub address: Ipv4Addr,
    /// The other nodes' sync addresses; none twice, not this node's.
    pub peers: Vec<Ipv4Addr>,
    /// The UDP port every node listens on.
    pub port: u16,
    /// The shared secret every sync message is authenticated with (read at start).
    pub key_file: PathBuf,
    /// How often a node says it is alive.
    pub hello: Duration,
    /// A peer silent this long is dead. At least twice `hello`.
    pub dead_after: Duration,
}

impl Cluster {
    pub const DEFAULT_PORT: u16 = 8849;
}
