//! The control loop on the housekeeping core: signals, the API socket, the metrics endpoint,
//! snapshot publishing, rates and session dumps, worker health. Every step is non-blocking or
//! bounded by a short wait, so a slow client or scraper cannot hold up the others.

use std::time::Duration;

use ctrlplane::api::{ApiServer, BackendAction, BackendStatus, ReloadReport, Request};
use ctrlplane::metrics::{render, MetricsServer};
use dataplane::dpdk::LcoreState;
use serde_json::Value;

use super::control::Control;
use super::observe::{Observer, PortView};
use super::{reload, signals, Appliance, EXIT_FAILED, EXIT_OK};

/// What `sluicectl sessions` lists without `--limit`, and at most.
const SESSIONS_DEFAULT: usize = 100;
const SESSIONS_MAX: usize = 100_000;

pub fn serve(app: &Appliance, control: &mut Control) -> i32 {
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
    let ports: Vec<PortView> = app
        .links
        .iter()
        .map(|l| PortView { name: &l.name, device: &l.device, port: &l.port, steering: l.steering.name() })
        .collect();
    let mut observer = Observer::new(app.dumps.clone(), ports.len());
    observer.track(control.model(), &app.counters);
    info!(
        "ready: {} interfaces, {} workers, api {}, metrics http://{}/metrics",
        app.links.len(),
        app.workers.len(),
        config.api.socket.display(),
        config.api.metrics
    );
    loop {
        if signals::stop_requested() {
            info!("stop requested");
            return EXIT_OK;
        }
        if signals::take_reload() && reload(control).is_ok() {
            observer.track(control.model(), &app.counters);
        }
        let mut handler = |request: Request| handle(request, app, control, &mut observer, &ports);
        if let Err(e) = api.poll(&mut handler, Duration::from_millis(20)) {
            warn!("api: {e}");
        }
        for transition in control.check_health(Duration::from_millis(10)) {
            info!("health: {transition}");
        }
        let mut scrape = || {
            let checks = control.check_counts();
            render(&observer.sample(&ports, &app.counters, control.model(), &checks))
        };
        if let Err(e) = metrics.poll(&mut scrape, Duration::from_millis(20)) {
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
    }
}

fn handle(
    request: Request,
    app: &Appliance,
    control: &mut Control,
    observer: &mut Observer,
    ports: &[PortView],
) -> Result<Value, String> {
    let json = |v: Result<Value, serde_json::Error>| v.map_err(|e| e.to_string());
    match request {
        Request::Status => json(serde_json::to_value(observer.status(ports, &app.counters, &app.cpus))),
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
            observer.track(control.model(), &app.counters);
            control.tick()?;
            json(serde_json::to_value(ReloadReport { changed: !changes.is_empty(), changes }))
        }
    }
}
