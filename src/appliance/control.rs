//! The control core's side of configuration: the running config, the model of services and
//! backends, and publishing snapshots to the workers (`dataplane::publish`). Reloads, API
//! changes and health changes all end here: the model changes, and the next `tick` publishes
//! one whole new snapshot once every worker has taken the previous one.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ctrlplane::config::{self, Config};
use dataplane::fullnat::{PoolLayout, WorkerPart};
use dataplane::publish::{Mailbox, Update};
use dataplane::snapshot::{Link, Snapshot};

use super::model::Model;
use super::snapshot::{relink, routes, timeouts};

pub struct Control {
    path: PathBuf,
    config: Config,
    model: Model,
    links: Vec<Link>,
    mailboxes: Vec<Arc<Mailbox>>,
    layouts: Vec<PoolLayout>,
    published: u64,
    pending: bool,
}

/// The first snapshot and each worker's part of it.
pub struct Start {
    pub snapshot: Arc<Snapshot>,
    pub parts: Vec<WorkerPart>,
    pub mailboxes: Vec<Arc<Mailbox>>,
}

impl Control {
    pub fn new(path: &Path, config: Config, links: Vec<Link>) -> Result<(Control, Start), String> {
        let workers = config.cpu.workers.len();
        let mut model = Model::default();
        model.apply(&config)?;
        let snapshot = Arc::new(model.snapshot(&links, routes(&config)?, timeouts(&config)));
        let mut layouts: Vec<PoolLayout> = (0..workers).map(|w| PoolLayout::new(w, workers)).collect();
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
        }
        self.links = relink(&new, &self.links);
        self.config = new;
        self.pending = true;
        Ok(changes)
    }

    /// Frees what workers handed back, and publishes pending changes once every worker has
    /// taken the previous snapshot. Never waits.
    pub fn tick(&mut self) -> Result<(), String> {
        for mailbox in &self.mailboxes {
            while let Some(retired) = mailbox.collect() {
                drop(retired);
            }
        }
        if !self.pending || self.mailboxes.iter().any(|m| m.seen() != self.published) {
            return Ok(());
        }
        let snapshot = Arc::new(self.model.snapshot(&self.links, routes(&self.config)?, timeouts(&self.config)));
        for (mailbox, layout) in self.mailboxes.iter().zip(&mut self.layouts) {
            let update = Update { snapshot: snapshot.clone(), part: layout.part(&snapshot) };
            if mailbox.post(update).is_err() {
                return Err("a worker's mailbox was full although it had taken the last update".to_owned());
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
    changed
}
