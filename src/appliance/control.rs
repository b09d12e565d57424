//! The control core's side of configuration: the running config, the model of services and
//! backends, and publishing snapshots to the workers (`dataplane::publish`). Reloads, API
//! changes and health changes all end here: the model changes, and the next `tick` publishes
//! one whole new snapshot once every worker has taken the previous one.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use std::collections::HashMap;
use std::net::SocketAddrV4;

use ctrlplane::config::{self, Config};
use ctrlplane::health::{CheckSpec, Checker, Target, Transition};
use dataplane::fullnat::{PoolLayout, WorkerPart};
use dataplane::publish::{Mailbox, Update};
use dataplane::snapshot::{Link, Snapshot};

use super::kernel::KernelRoutes;
use super::model::Model;
use super::snapshot::{relink, routes, timeouts, with_policy};

pub struct Control {
    path: PathBuf,
    config: Config,
    model: Model,
    links: Vec<Link>,
    mailboxes: Vec<Arc<Mailbox>>,
    layouts: Vec<PoolLayout>,
    published: u64,
    pending: bool,
    checker: Checker,
    /// Set when publishing failed half way: workers disagree, the appliance must stop.
    broken: Option<String>,
    /// Which worker owns each local IP, as last published.
    owners: Vec<(u32, u16)>,
    /// The `[[route]]`s given to the kernel, for health checks and BGP beyond the links.
    kernel_routes: KernelRoutes,
}

/// The first snapshot and each worker's part of it.
pub struct Start {
    pub snapshot: Arc<Snapshot>,
    pub parts: Vec<WorkerPart>,
    pub mailboxes: Vec<Arc<Mailbox>>,
}

impl Control {
    pub fn new(
        path: &Path,
        config: Config,
        links: Vec<Link>,
        kernel_routes: KernelRoutes,
    ) -> Result<(Control, Start), String> {
        let workers = config.cpu.workers.len();
        let mut model = Model::default();
        model.apply(&config)?;
        // Checked backends start down until their first `rise` successes.
        let mut checker = Checker::new();
        checker.set_targets(targets(&config));
        sync_health(&checker, &mut model);
        let snapshot = model.snapshot(&links, routes(&config)?, timeouts(&config), workers, &[]);
        let snapshot = Arc::new(with_policy(snapshot, &config));
        let mut layouts: Vec<PoolLayout> =
            (0..workers).map(|w| PoolLayout::new(w, workers, config.sessions.capacity)).collect();
        let parts = layouts.iter_mut().map(|l| l.part(&snapshot)).collect();
        let mailboxes: Vec<Arc<Mailbox>> = (0..workers).map(|_| Arc::new(Mailbox::new(snapshot.generation))).collect();
        let control = Control {
            path: path.to_owned(),
            config,
            model,
            links,
            mailboxes: mailboxes.clone(),
            layouts,
            published: snapshot.generation,
            pending: false,
            checker,
            broken: None,
            owners: snapshot.local_owners.entries().to_vec(),
            kernel_routes,
        };
        Ok((control, Start { snapshot, parts, mailboxes }))
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Changes the model; the change goes out with the next `tick`.
    pub fn change(&mut self, f: impl FnOnce(&mut Model) -> bool) {
        if f(&mut self.model) {
            self.pending = true;
        }
    }

    /// Re-reads the config file. An invalid file, or one that changes what only a restart can
    /// change, is refused whole and the running config stays. Returns the changes applied.
    pub fn reload(&mut self) -> Result<Vec<String>, String> {
        let new = config::load(&self.path, &super::host()).map_err(|d| d.to_string())?;
        let restart_only = restart_only_changes(&self.config, &new);
        if !restart_only.is_empty() {
            return Err(format!(
                "{} changes {}, which only a restart applies; nothing was changed",
                self.path.display(),
                restart_only.join(", ")
            ));
        }
        routes(&new)?;
        // `apply` changes the model only when it succeeds.
        let mut changes = self.model.apply(&new)?;
        if new.routes != self.config.routes {
            changes.push("routes changed (new sessions use them)".to_owned());
            self.kernel_routes.sync(&new.routes);
        }
        if new.bgp != self.config.bgp {
            changes.push("[bgp] changed (BIRD reconfigured; sessions of unchanged neighbours stay up)".to_owned());
        }
        self.links = relink(&new, &self.links);
        self.checker.set_targets(targets(&new));
        sync_health(&self.checker, &mut self.model);
        self.config = new;
        self.pending = true;
        Ok(changes)
    }

    /// Runs health checks for at most `wait`; state changes go into the model (and out with
    /// the next snapshot) and are returned for logging.
    pub fn check_health(&mut self, wait: std::time::Duration) -> Vec<Transition> {
        let transitions = self.checker.poll(wait);
        if !transitions.is_empty() && sync_health(&self.checker, &mut self.model) {
            self.pending = true;
        }
        transitions
    }

    /// The health checks' sockets, for the control loop's one wait (then `check_health` with
    /// no wait), and when the checks next need a turn without a socket waking them.
    pub fn health_interests(&self, fds: &mut Vec<libc::pollfd>) {
        self.checker.interests(fds);
    }

    pub fn health_due(&self) -> Option<std::time::Instant> {
        self.checker.next_due()
    }

    /// Whether a change waits to be published (`tick` publishes it once every worker has taken
    /// the previous snapshot, which they do within microseconds).
    pub fn publishing(&self) -> bool {
        self.pending
    }

    /// Per checked backend: (service, backend, checks ok, checks failed).
    pub fn check_counts(&self) -> Vec<(String, SocketAddrV4, u64, u64)> {
        self.checker.states().map(|(s, b, _, ok, fail)| (s.to_owned(), b, ok, fail)).collect()
    }

    /// Frees what workers handed back, and publishes pending changes once every worker has
    /// taken the previous snapshot. Never waits.
    pub fn tick(&mut self) -> Result<(), String> {
        if let Some(why) = &self.broken {
            return Err(why.clone());
        }
        for mailbox in &self.mailboxes {
            while let Some(retired) = mailbox.collect() {
                drop(retired);
            }
        }
        if !self.pending || self.mailboxes.iter().any(|m| m.seen() != self.published) {
            return Ok(());
        }
        let workers = self.config.cpu.workers.len();
        let snapshot =
            self.model.snapshot(&self.links, routes(&self.config)?, timeouts(&self.config), workers, &self.owners);
        let snapshot = Arc::new(with_policy(snapshot, &self.config));
        self.owners = snapshot.local_owners.entries().to_vec();
        // Every part is built before any is posted; a post can only fail if the protocol is
        // broken (a worker took an update it was not acknowledged for), which is fatal.
        let parts: Vec<WorkerPart> = self.layouts.iter_mut().map(|l| l.part(&snapshot)).collect();
        for (mailbox, part) in self.mailboxes.iter().zip(parts) {
            if mailbox.post(Update { snapshot: snapshot.clone(), part }).is_err() {
                let why = "a worker's mailbox was full although it had taken the last update".to_owned();
                self.broken = Some(why.clone());
                return Err(why);
            }
        }
        self.published = snapshot.generation;
        self.pending = false;
        Ok(())
    }
}

/// Sections that a running appliance cannot change: ports, cores, memory, sockets.
fn restart_only_changes(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut changed = Vec::new();
    if old.dpdk != new.dpdk {
        changed.push("[dpdk]");
    }
    if old.cpu != new.cpu {
        changed.push("[cpu]");
    }
    if old.api != new.api {
        changed.push("[api]");
    }
    if old.sessions != new.sessions {
        changed.push("[sessions]");
    }
    if old.steering != new.steering {
        changed.push("[steering]");
    }
    if old.timeouts != new.timeouts {
        changed.push("[timeouts]");
    }
    if old.interfaces != new.interfaces {
        changed.push("[[interface]]");
    }
    // BIRD's binary and files stay; everything else in [bgp] goes to BIRD by `configure`.
    let same_daemon = match (&old.bgp, &new.bgp) {
        (None, None) => true,
        (Some(a), Some(b)) => a.bird == b.bird && a.runtime_dir == b.runtime_dir,
        _ => false,
    };
    if !same_daemon {
        changed.push("[bgp] (whether it is there, bird, runtime_dir)");
    }
    if old.cluster != new.cluster {
        changed.push("[cluster]");
    }
    changed
}

/// One health-check target per backend of every service whose check is not `none`.
fn targets(config: &Config) -> Vec<Target> {
    let mut out = Vec::new();
    for s in &config.services {
        let Some(mut spec) = CheckSpec::from_config(&s.health) else { continue };
        if s.client_address == config::ClientAddress::ProxyV2 {
            spec.preamble = dataplane::wire::proxy::local().to_vec();
        }
        for b in &s.backends {
            out.push(Target { service: s.name.clone(), backend: b.address, spec: spec.clone() });
        }
    }
    out
}

/// Marks every backend down or up as its checker says (up when it has no check). Returns
/// whether anything changed.
fn sync_health(checker: &Checker, model: &mut Model) -> bool {
    let up: HashMap<(&str, SocketAddrV4), bool> = checker.states().map(|(s, b, up, _, _)| ((s, b), up)).collect();
    let mut verdicts = Vec::new();
    for (_, service, members) in model.services() {
        for &id in members {
            if let Some((address, _, _)) = model.backend(id) {
                let down = up.get(&(service.name.as_str(), address)).is_some_and(|up| !up);
                verdicts.push((id, down));
            }
        }
    }
    let mut changed = false;
    for (id, down) in verdicts {
        changed |= model.set_down(id, down);
    }
    changed
}
