//! The control loop on the housekeeping core: signals, the API socket, the metrics endpoint,
//! snapshot publishing, rates and session dumps, worker health, and with `[bgp]` what BIRD
//! announces. The loop sleeps in one `poll(2)` over every socket it serves (API clients,
//! scrapers, health checks, the signals' wake-up socket) until one is ready or a timer is due;
//! every step after it is non-blocking, so a slow client or scraper cannot hold up the others.
//!
//! Stopping: without `[bgp]` the first SIGTERM/SIGINT ends the loop. With it, the node's VIPs
//! are withdrawn first; once BIRD has taken that (or `WITHDRAW_WAIT` passed), the data path
//! forwards for `[bgp] drain` so that connections the routers already moved elsewhere finish
//! their packets in flight, then the loop ends. A second signal ends it at once.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use ctrlplane::api::{poller, ApiServer, BackendAction, BackendStatus, ReloadReport, Request};
use ctrlplane::metrics::{render, MetricsServer};
use dataplane::dpdk::LcoreState;
use serde_json::Value;

use super::cluster::{self, Prepared, Sync};
use super::control::Control;
use super::observe::{Observer, PortView};
use super::routing::Routing;
use super::watchdog::{Watchdog, STALL_AFTER};
use super::{reload, signals, Appliance, EXIT_FAILED, EXIT_OK};

/// What `sluicectl sessions` lists without `--limit`, and at most.
const SESSIONS_DEFAULT: usize = 100;
const SESSIONS_MAX: usize = 100_000;
/// How long a stop waits for BIRD to take the withdrawal before the drain starts anyway.
const WITHDRAW_WAIT: Duration = Duration::from_secs(3);
/// How long `drain-node` and `undrain-node` wait for BIRD before they answer.
const DRAIN_REPLY_WAIT: Duration = Duration::from_millis(500);
/// The control loop's longest sleep with nothing to do. Sockets and signals wake it at once,
/// health checks when due; this bounds only the periodic duties: freeing retired snapshots,
/// the rates (each second) and the stall watchdog (one second). Each wake-up takes tens of
/// microseconds of the housekeeping core from whatever else runs there.
const IDLE_WAIT: Duration = Duration::from_millis(100);
/// With `[bgp]` or `[cluster]`, or while stopping: what BIRD announces and the cluster's view
/// of local IPs follow changes at least this often.
const ROUTING_WAIT: Duration = Duration::from_millis(20);
/// While a change waits for the workers to take the previous snapshot (they do between two
/// bursts).
const PUBLISH_WAIT: Duration = Duration::from_millis(1);

/// Where a stop stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Serving,
    /// SIGTERM with `[bgp]`: the VIPs are being withdrawn.
    Withdrawing {
        since: Instant,
    },
    /// Withdrawn; forwarding until then.
    Draining {
        until: Instant,
    },
}

/// `bird`: the BIRD binary `preflight` found, with `[bgp]`; `prepared`: with `[cluster]`.
pub fn serve(app: &Appliance, control: &mut Control, bird: Option<PathBuf>, prepared: Option<Prepared>) -> i32 {
    let config = control.config().clone();
    let mut api = match ApiServer::bind(&config.api.socket) {
        Ok(api) => api,
        Err(e) => {
            error!("api socket {}: {e}", config.api.socket.display());
            return EXIT_FAILED;
        }
    };
    let mut metrics = match MetricsServer::bind(config.api.metrics) {
        Ok(m) => m,
        Err(e) => {
            error!("metrics on {}: {e}", config.api.metrics);
            return EXIT_FAILED;
        }
    };
    // BIRD starts once the exception path carries packets (ports and workers are up), and is
    // stopped when `routing` is dropped, on every way out of this function.
    let mut routing = match (&config.bgp, bird) {
        (Some(bgp), Some(binary)) => match Routing::start(bgp, binary) {
            Ok(r) => Some(r),
            Err(e) => {
                error!("bgp: {e}");
                return EXIT_FAILED;
            }
        },
        _ => None,
    };
    let sync = match (&config.cluster, prepared) {
        (Some(c), Some(p)) => match Sync::start(c, p, app.sync_channels.clone(), app.counters.clone()) {
            Ok(s) => Some(s),
            Err(e) => {
                error!("{e}");
                return EXIT_FAILED;
            }
        },
        _ => None,
    };
    let ports: Vec<PortView> = app
        .links
        .iter()
        .map(|l| PortView { name: &l.name, device: &l.device, port: &l.port, steering: l.steering.name() })
        .collect();
    let mut observer = Observer::new(app.dumps.clone(), ports.len());
    observer.track(control.model(), &app.counters);
    let mut watchdog = Watchdog::new(app.workers.len(), STALL_AFTER, Instant::now());
    let mut phase = Phase::Serving;
    let mut fds = Vec::new();
    info!(
        "ready: {} interfaces, {} workers, api {}, metrics http://{}/metrics",
        app.links.len(),
        app.workers.len(),
        config.api.socket.display(),
        config.api.metrics
    );
    loop {
        if let Some(code) = step_stop(&mut phase, routing.as_mut()) {
            return code;
        }
        if signals::take_reload() && reload(control).is_ok() {
            after_reload(control, &mut observer, &mut routing, &app.counters);
        }
        // One wait for everything that can need the loop: API clients, scrapers, health checks
        // in flight, signals; and no longer than the next timer (a check due, or the periodic
        // duties below).
        fds.clear();
        api.interests(&mut fds);
        metrics.interests(&mut fds);
        control.health_interests(&mut fds);
        fds.extend(signals::wake_fd().map(|fd| poller::interest(fd, true, false)));
        let active = routing.is_some() || sync.is_some() || phase != Phase::Serving;
        let wait = next_wait(control, api.has_request_ready(), active, watchdog.any_stalled());
        if let Err(e) = poller::wait(&mut fds, wait) {
            warn!("control loop: {e}");
        }
        signals::drain_wake();
        let mut handler = |request: Request| {
            let mut node = Node { routing: &mut routing, sync: sync.as_ref(), stalled: watchdog.any_stalled() };
            handle(request, app, control, &mut observer, &ports, &mut node)
        };
        if let Err(e) = api.serve(&mut handler) {
            warn!("api: {e}");
        }
        for transition in control.check_health(Duration::ZERO) {
            let t = &transition;
            info!(target: "health", service = t.service.as_str(), backend:% = t.backend, up = t.up, reason = t.reason.as_str(); "health: {t}");
        }
        let mut scrape = || {
            let checks = control.check_counts();
            let mut sample = observer.sample(&ports, &app.counters, control.model(), &checks);
            sample.mbufs_available = Some(u64::from(app.mbufs_available()));
            if let Some(r) = &routing {
                r.sample(&mut sample);
            }
            if let Some(s) = &sync {
                sample.peers = cluster::sample(&s.status(), &app.counters);
            }
            render(&sample)
        };
        if let Err(e) = metrics.serve(&mut scrape) {
            warn!("metrics: {e}");
        }
        if let Err(e) = control.tick() {
            error!("{e}");
            return EXIT_FAILED;
        }
        observer.tick(&ports, &app.counters);
        if let Some(w) = app.workers.iter().find(|w| w.state() == LcoreState::Panicked) {
            error!("worker on lcore {} failed; stopping", w.lcore());
            return EXIT_FAILED;
        }
        for change in watchdog.observe(app.counters.iter().map(|c| c.polls.get()), Instant::now()) {
            if change.stalled {
                error!(
                    "worker {} has not polled for {:?}; its packets wait{}",
                    change.worker,
                    change.still_for,
                    if routing.is_some() { ", and this node's routes are withdrawn" } else { "" }
                );
            } else {
                info!("worker {} polls again after {:?}", change.worker, change.still_for);
            }
        }
        let (backups, syncing) = match &sync {
            Some(s) => cluster::pass(s, control),
            None => (Vec::new(), false),
        };
        if let Some(r) = &mut routing {
            r.update(control.model(), watchdog.any_stalled(), &backups, syncing);
        }
    }
}

/// How long the control loop waits for a socket or a signal: until the next health check is
/// due, and no longer than its periodic duties allow (`IDLE_WAIT`, `ROUTING_WAIT` when `active`:
/// with `[bgp]` or `[cluster]`, or stopping; `PUBLISH_WAIT` while a change waits to go out,
/// unless a worker is `stalled` and cannot take it); not at all when an API request is already
/// buffered (`ready`).
fn next_wait(control: &Control, ready: bool, active: bool, stalled: bool) -> Duration {
    if ready {
        return Duration::ZERO;
    }
    let cadence = if control.publishing() && !stalled {
        PUBLISH_WAIT
    } else if active {
        ROUTING_WAIT
    } else {
        IDLE_WAIT
    };
    control.health_due().map_or(cadence, |due| cadence.min(due.saturating_duration_since(Instant::now())))
}

/// Moves a stop along; `Some(code)` when the loop should end.
fn step_stop(phase: &mut Phase, routing: Option<&mut Routing>) -> Option<i32> {
    let requests = signals::stop_requests();
    if requests == 0 {
        return None;
    }
    let Some(routing) = routing else {
        info!("stop requested");
        return Some(EXIT_OK);
    };
    if requests > 1 && *phase != Phase::Serving {
        info!("second stop request: stopping now");
        return Some(EXIT_OK);
    }
    let now = Instant::now();
    match *phase {
        Phase::Serving => {
            info!("stop requested: withdrawing this node's VIPs, then forwarding for {:?}", routing.drain());
            routing.begin_stop();
            *phase = Phase::Withdrawing { since: now };
        }
        Phase::Withdrawing { since } => {
            let settled = routing.settled();
            if settled || now.duration_since(since) >= WITHDRAW_WAIT {
                if !settled {
                    warn!("bgp: BIRD has not confirmed the withdrawal within {WITHDRAW_WAIT:?}; draining anyway");
                }
                info!("routes withdrawn; forwarding for {:?}", routing.drain());
                *phase = Phase::Draining { until: now + routing.drain() };
            }
        }
        Phase::Draining { until } => {
            if now >= until {
                info!("drain over: stopping");
                return Some(EXIT_OK);
            }
        }
    }
    None
}

/// What a successful reload changes beyond the model: counters' bases and BIRD's config.
fn after_reload(
    control: &Control,
    observer: &mut Observer,
    routing: &mut Option<Routing>,
    counters: &[std::sync::Arc<dataplane::counters::WorkerCounters>],
) {
    observer.track(control.model(), counters);
    if let (Some(r), Some(bgp)) = (routing.as_mut(), &control.config().bgp) {
        r.reconfigure(bgp);
    }
}

/// What the API may look at or change of the node beyond its services: its routing, its sync.
struct Node<'a> {
    routing: &'a mut Option<Routing>,
    sync: Option<&'a Sync>,
    stalled: bool,
}

fn handle(
    request: Request,
    app: &Appliance,
    control: &mut Control,
    observer: &mut Observer,
    ports: &[PortView],
    node: &mut Node,
) -> Result<Value, String> {
    let (routing, sync, stalled) = (&mut *node.routing, node.sync, node.stalled);
    let json = |v: Result<Value, serde_json::Error>| v.map_err(|e| e.to_string());
    match request {
        Request::Status => {
            let mut status = observer.status(ports, &app.counters, &app.cpus);
            status.bgp = routing.as_ref().map(Routing::status);
            status.cluster = sync.map(|s| cluster::status(&s.status(), &app.counters));
            json(serde_json::to_value(status))
        }
        Request::DrainNode | Request::UndrainNode => {
            let Some(r) = routing.as_mut() else {
                return Err("this node has no [bgp] section: it announces nothing to drain".to_owned());
            };
            let drained = request == Request::DrainNode;
            r.set_drained(drained);
            let (backups, syncing) = match sync {
                Some(s) => cluster::pass(s, control),
                None => (Vec::new(), false),
            };
            r.update(control.model(), stalled, &backups, syncing);
            // Answer once BIRD has the change, so that the operator's next step sees it done.
            let deadline = Instant::now() + DRAIN_REPLY_WAIT;
            while !r.settled() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            info!("api: node {}", if drained { "drained: its VIPs are withdrawn" } else { "undrained" });
            json(serde_json::to_value(r.status()))
        }
        Request::Services => json(serde_json::to_value(observer.services(control.model(), &app.counters))),
        Request::Backend { service, address, action } => {
            let id = control
                .model()
                .backend_id(&service, address)
                .ok_or_else(|| format!("service {service} has no backend {address}"))?;
            control.change(|m| {
                m.set_override(id, |o| match action {
                    BackendAction::Weight(w) => o.weight = Some(w),
                    BackendAction::Drain => o.drain = true,
                    BackendAction::Enable => o.drain = false,
                });
                true
            });
            // Published before the reply goes out: the client's next new flow sees it.
            control.tick()?;
            info!("api: service {service} backend {address}: {action}");
            let status: Option<BackendStatus> = observer
                .services(control.model(), &app.counters)
                .into_iter()
                .find(|s| s.name == service)
                .and_then(|s| s.backends.into_iter().find(|b| b.address == address.to_string()));
            json(serde_json::to_value(status))
        }
        Request::Sessions { service, limit } => {
            let limit = limit.unwrap_or(SESSIONS_DEFAULT).min(SESSIONS_MAX);
            json(serde_json::to_value(observer.sessions(control.model(), service.as_deref(), limit)?))
        }
        Request::Reload => {
            let changes = reload(control)?;
            after_reload(control, observer, routing, &app.counters);
            control.tick()?;
            json(serde_json::to_value(ReloadReport { changed: !changes.is_empty(), changes }))
        }
    }
}
