//! The appliance's life: validate the config, bring up DPDK and the ports, publish the first
//! snapshot, start the ports and workers, serve signals, and tear everything down in reverse.
//!
//! Start-up order (each step needs the one before):
//! 1. config loaded and validated (refused: exit 2, nothing touched);
//! 2. EAL (lcores from `[cpu]`), then the mbuf pool;
//! 3. per interface: its DPDK port configured, its kernel tap created with the port's MAC,
//!    the tap's addresses set;
//! 4. the snapshot workers read, built from config and ports;
//! 5. ports started, then workers launched on their lcores;
//! 6. the control loop on the main lcore until SIGTERM/SIGINT; with `[bgp]` it starts BIRD
//!    first (the exception path now carries BGP), and on SIGTERM withdraws the VIPs and drains
//!    before it returns.
//!
//! Shutdown: BIRD stopped (its sessions close), workers stopped and joined, ports stopped and closed (the taps, and so the
//! kernel interfaces, disappear), pool freed, EAL cleaned up; exit 0.

mod cluster;
mod control;
pub mod eal_args;
pub mod kernel;
pub mod model;
mod observe;
mod routing;
mod serve;
mod signals;
pub mod snapshot;
mod steering;
mod watchdog;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use ctrlplane::config::{self, Config, Host, IdleMode as ConfigIdle};

use control::Control;
use dataplane::counters::{DropReason, WorkerCounters};
use dataplane::dpdk::{self, Eal, FlowHandle, LcoreHandle, Mempool, Port, RingConsumer, RingProducer};
use dataplane::dump::DumpBox;
use dataplane::snapshot::Steering;
use dataplane::wire::MacAddr;
use dataplane::worker::{IdleMode, NeighbourInbox, Worker, WorkerSetup, NEIGHBOUR_INBOX};

use snapshot::OpenedLink;

/// Process exit codes.
pub const EXIT_OK: i32 = 0;
pub const EXIT_FAILED: i32 = 1;
pub const EXIT_INVALID_CONFIG: i32 = 2;

/// Per-lcore mbuf cache of the pool.
const MBUF_CACHE: u32 = 256;

pub fn host() -> Host {
    // SAFETY: sysconf takes a constant name and reads process-wide facts; no memory of ours.
    let cpus = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    Host { cpus: cpus.max(1) as usize }
}

/// `sluice --check-config FILE`.
pub fn check_config(path: &Path) -> i32 {
    match config::load(path, &host()) {
        Ok(config) => {
            for w in &config.warnings {
                eprintln!("{w}");
            }
            EXIT_OK
        }
        Err(problems) => {
            eprintln!("{problems}");
            EXIT_INVALID_CONFIG
        }
    }
}

/// `sluice --config FILE`: runs in the foreground until stopped; returns the exit code.
pub fn run(path: &Path) -> i32 {
    let config = match config::load(path, &host()) {
        Ok(c) => c,
        Err(problems) => {
            eprintln!("{problems}");
            error!("{}: invalid configuration, not starting", path.display());
            return EXIT_INVALID_CONFIG;
        }
    };
    for w in &config.warnings {
        warn!(target: "config", "{w}");
    }
    if let Err(e) = signals::install() {
        error!("signal handlers: {e}");
        return EXIT_FAILED;
    }
    info!("sluice {} starting with {}", crate::version(), path.display());
    if let Err(e) = check_memory(&config) {
        error!("{e}");
        return EXIT_FAILED;
    }
    // With [bgp], BIRD must be there and accept its configuration before any device is touched.
    let bird = match config.bgp.as_ref().map(ctrlplane::bgp::preflight).transpose() {
        Ok(bird) => bird,
        Err(e) => {
            error!("{e}");
            return EXIT_FAILED;
        }
    };
    // With [cluster], the key must be there too.
    let prepared = match config.cluster.as_ref().map(cluster::prepare).transpose() {
        Ok(p) => p,
        Err(e) => {
            error!("{e}");
            return EXIT_FAILED;
        }
    };
    let epoch = prepared.as_ref().map(|p| p.epoch);
    let (appliance, mut control) = match Appliance::start(path, config, epoch) {
        Ok(a) => a,
        Err(e) => {
            error!("{e}");
            return EXIT_FAILED;
        }
    };
    let code = serve::serve(&appliance, &mut control, bird, prepared);
    appliance.shutdown();
    info!("stopped");
    code
}

/// One `[[interface]]`: the port and the tap behind it. Field order is drop order.
struct LinkPorts {
    name: String,
    device: String,
    steering: Steering,
    /// Flow rules go before their port is closed.
    _flows: Vec<FlowHandle>,
    port: Port,
    tap: Port,
}

/// Everything the running appliance owns. Field order is drop order: ports before the pool
/// their queues draw from, the pool before the EAL.
struct Appliance {
    workers: Vec<LcoreHandle>,
    stop: Arc<AtomicBool>,
    counters: Vec<Arc<WorkerCounters>>,
    dumps: Vec<Arc<DumpBox>>,
    cpus: Vec<usize>,
    /// With `[cluster]`: each worker's queues to the sync engine.
    sync_channels: Vec<Arc<dataplane::sync::SyncChannel>>,
    links: Vec<LinkPorts>,
    /// Dropped after the ports; workers allocate from it until they are joined.
    pool: Mempool,
    /// Held so that it is cleaned up last.
    _eal: Eal,
}

impl Appliance {
    /// Free mbufs in the pool, for the metrics.
    fn mbufs_available(&self) -> u32 {
        self.pool.available()
    }

    /// `epoch`: with `[cluster]`, this start's epoch.
    fn start(path: &Path, config: Config, epoch: Option<u64>) -> Result<(Appliance, Control), String> {
        let config = &config;
        let eal = Eal::init(&eal_args::eal_args(config)).map_err(|e| e.to_string())?;
        info!("{} initialised", dpdk::version());
        let socket = eal.socket_id();
        let pool =
            Mempool::pktmbuf("sluice_mbufs", config.dpdk.mbufs, MBUF_CACHE, socket).map_err(|e| e.to_string())?;
        let queues = config.cpu.workers.len() as u16;

        let rules = steering::flow_rules(config)?;
        let mut links = Vec::with_capacity(config.interfaces.len());
        let mut opened = Vec::with_capacity(config.interfaces.len());
        for iface in &config.interfaces {
            let mut port = Port::open(&iface.dpdk_device()).map_err(|e| format!("interface {}: {e}", iface.name))?;
            port.configure(queues, &pool).map_err(|e| format!("interface {}: {e}", iface.name))?;
            let mac = MacAddr(port.mac().map_err(|e| e.to_string())?);
            let mut tap = kernel::create_tap(iface, mac).map_err(|e| format!("interface {}: {e}", iface.name))?;
            tap.configure(queues, &pool).map_err(|e| format!("interface {}: {e}", iface.name))?;
            kernel::configure_addresses(iface).map_err(|e| format!("interface {}: {e}", iface.name))?;
            info!(
                "interface {}: port {} ({}, mac {mac}), kernel interface {} with {}",
                iface.name,
                iface.device,
                port.driver().unwrap_or_default(),
                iface.name,
                iface.addresses.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", ")
            );
            let choice = steering::choose(config, &iface.name, &port, &rules)?;
            let steering = choice.steering;
            info!("interface {}: reply steering {}", iface.name, choice.steering.name());
            opened.push(OpenedLink {
                port: port.id(),
                kernel_port: tap.id(),
                mac,
                checksum_offload: port.checksum_offload(),
                steering: choice.steering,
                rss: choice.rss,
                mtu: port.mtu(),
            });
            links.push(LinkPorts {
                name: iface.name.clone(),
                device: iface.device.clone(),
                steering,
                _flows: choice.flows,
                port,
                tap,
            });
        }

        // The kernel reaches what the data path reaches: health checks and BGP leave from it.
        let mut kernel_routes = kernel::KernelRoutes::default();
        kernel_routes.sync(&config.routes);
        // The first snapshot is complete before any port passes a packet.
        let (control, start) = Control::new(path, config.clone(), snapshot::links(config, &opened), kernel_routes)?;
        for link in &mut links {
            link.tap.start().map_err(|e| e.to_string())?;
            link.port.start().map_err(|e| e.to_string())?;
        }

        let stop = Arc::new(AtomicBool::new(false));
        let idle = match config.cpu.idle {
            ConfigIdle::Busy => IdleMode::Busy,
            ConfigIdle::Adaptive => IdleMode::Adaptive,
        };
        let (sync_channels, mut sync_setups) = match (&config.cluster, epoch) {
            (Some(c), Some(epoch)) => cluster::channels(c, epoch, config.cpu.workers.len()),
            _ => (Vec::new(), Vec::new()),
        };
        let mut appliance = Appliance {
            sync_channels,
            workers: Vec::new(),
            stop,
            counters: config.cpu.workers.iter().map(|_| Arc::new(WorkerCounters::default())).collect(),
            dumps: config.cpu.workers.iter().map(|_| Arc::new(DumpBox::default())).collect(),
            cpus: config.cpu.workers.clone(),
            links,
            pool,
            _eal: eal,
        };
        // Each worker gets the producing halves of its rings to the others and the consuming
        // halves of theirs to it; a ring (and the mbufs left in it) goes with its last half, on
        // a worker lcore before the pool is freed.
        let (mut rings_out, mut rings_in) = redirect_rings(config.cpu.workers.len(), socket)?;
        let neighbours: Vec<Arc<NeighbourInbox>> =
            config.cpu.workers.iter().map(|_| Arc::new(NeighbourInbox::new(NEIGHBOUR_INBOX))).collect();
        for (i, (part, cpu)) in start.parts.into_iter().zip(&config.cpu.workers).enumerate() {
            let setup = WorkerSetup {
                index: i,
                queue: i as u16,
                snapshot: start.snapshot.clone(),
                part: Some(part),
                rings_out: std::mem::take(&mut rings_out[i]),
                rings_in: std::mem::take(&mut rings_in[i]),
                neighbours: neighbours.clone(),
                mailbox: start.mailboxes[i].clone(),
                dumps: appliance.dumps[i].clone(),
                all_counters: appliance.counters.clone(),
                counters: appliance.counters[i].clone(),
                idle,
                stop: appliance.stop.clone(),
                pool: appliance.pool.handle(),
                session_capacity: config.sessions.capacity,
                announce: i == 0,
                sync: (!sync_setups.is_empty()).then(|| sync_setups.remove(0)),
            };
            let lcore = eal_args::worker_lcore(i);
            // The worker allocates its tables on its own lcore, so that their pages are placed
            // on its NUMA node by first touch.
            match dpdk::launch(lcore, move || Worker::new(setup).run()) {
                Ok(handle) => appliance.workers.push(handle),
                Err(e) => {
                    appliance.shutdown();
                    return Err(e.to_string());
                }
            }
            info!("worker {i} on cpu {cpu} (lcore {lcore}), queue {i} of every port");
        }
        Ok((appliance, control))
    }

    fn shutdown(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for worker in self.workers.drain(..) {
            worker.wait();
        }
        for link in &self.links {
            if let Ok(s) = link.port.stats() {
                info!(
                    "interface {}: rx {} tx {} packets, {} missed",
                    link.name, s.rx_packets, s.tx_packets, s.rx_missed
                );
            }
        }
        let drops: Vec<String> = DropReason::ALL
            .iter()
            .map(|&r| format!("{} {}", r.name(), self.counters.iter().map(|c| c.dropped(r)).sum::<u64>()))
            .collect();
        info!("data path drops: {}", drops.join(", "));
        // Dropping closes ports (taps and their kernel interfaces go), then the pool, then the EAL.
    }
}

/// Workers are stopped and joined before anything they use goes (ports, the pool, the EAL),
/// also when the control loop unwinds from a panic instead of calling `shutdown`.
impl Drop for Appliance {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for worker in self.workers.drain(..) {
            worker.wait();
        }
    }
}

/// SIGHUP (and the API's `reload`): an invalid file, or one that changes what needs a
/// restart, is refused whole and the running config stays; otherwise every change takes
/// effect together with the next snapshot.
fn reload(control: &mut Control) -> Result<Vec<String>, String> {
    match control.reload() {
        Ok(changes) if changes.is_empty() => {
            info!(target: "reload", changes = 0; "reload: no change");
            Ok(changes)
        }
        Ok(changes) => {
            for change in &changes {
                info!(target: "reload", change = change.as_str(); "reload: {change}");
            }
            Ok(changes)
        }
        Err(problems) => {
            for line in problems.lines() {
                warn!(target: "reload", "{line}");
            }
            warn!(target: "reload", refused = true; "reload refused; the running configuration stays");
            Err(problems)
        }
    }
}

/// A single-producer single-consumer ring for each ordered pair of workers: `out[from][to]`
/// is the producing half (None for `from == to`), `into[to]` the consuming halves.
#[allow(clippy::type_complexity)]
fn redirect_rings(
    workers: usize,
    socket: i32,
) -> Result<(Vec<Vec<Option<RingProducer>>>, Vec<Vec<RingConsumer>>), String> {
    let mut out: Vec<Vec<Option<RingProducer>>> = (0..workers).map(|_| Vec::new()).collect();
    let mut into: Vec<Vec<RingConsumer>> = (0..workers).map(|_| Vec::new()).collect();
    for (from, producers) in out.iter_mut().enumerate() {
        for (to, consumers) in into.iter_mut().enumerate() {
            if from == to {
                producers.push(None);
                continue;
            }
            let (p, c) =
                dpdk::mbuf_ring(&format!("sluice_redirect_{from}_{to}"), 1024, socket).map_err(|e| e.to_string())?;
            producers.push(Some(p));
            consumers.push(c);
        }
    }
    Ok((out, into))
}

/// Refuses session tables the machine cannot hold (they are allocated whole at start, and an
/// allocation that fails would abort the process).
fn check_memory(config: &Config) -> Result<(), String> {
    let workers = config.cpu.workers.len() as u64;
    let needed = workers * dataplane::fullnat::FullNat::bytes_for(config.sessions.capacity, config.cluster.is_some());
    let available = std::fs::read_to_string("/proc/meminfo").ok().and_then(|text| {
        let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
        line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kib| kib * 1024)
    });
    match available {
        Some(available) if needed > available => Err(format!(
            "[sessions] capacity {} for {workers} worker(s) needs about {} MiB of session tables; \
             this machine has {} MiB available",
            config.sessions.capacity,
            needed >> 20,
            available >> 20
        )),
        _ => Ok(()),
    }
}

/// `sluice import-keepalived FILE`: the Sluice config on stdout, what was not carried over on
/// stderr (FILE:LINE: what and why). Exit 0 when everything was carried over (notes at most),
/// 1 when something was not, 2 when the file cannot be read.
pub fn import_keepalived(path: &Path) -> i32 {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("sluice: {}: {e}", path.display());
            return EXIT_INVALID_CONFIG;
        }
    };
    let imported = ctrlplane::import::import_keepalived(&path.display().to_string(), &text);
    for d in &imported.diagnostics {
        eprintln!("{d}");
    }
    print!("{}", imported.toml);
    if imported.carried_all() {
        EXIT_OK
    } else {
        EXIT_FAILED
    }
}
