//! `Checker`: the schedule of every target's checks and the one `poll(2)` loop that services
//! every check in flight.
//!
//! Schedule: a target's next check is due `interval` after its previous one was due, so the
//! rate holds however late the loop runs; a loop late by more than a whole interval starts the
//! check at once and does not catch up with a burst. A target never has two checks in flight:
//! a check that outlives the interval (a timeout longer than the interval) delays the next.
//! A new target's first check is due at once plus a small jitter, the same for a target every
//! time (a hash of its service and backend), so that a reload with hundreds of new backends
//! does not open hundreds of sockets in the same millisecond, and later checks stay spread.

use std::collections::HashMap;
use std::mem;
use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use super::probe::{Probe, Step};
use super::tally::{Outcome, Tally};
use super::{Target, Transition};
use crate::api::poller;

/// The largest jitter of a first check; it is also at most a tenth of the interval.
const MAX_JITTER: Duration = Duration::from_millis(100);

/// The shortest interval honoured: a zero interval must not spin the loop.
const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// Checks every target on its schedule. Owned and polled by the housekeeping loop.
pub struct Checker {
    watched: Vec<Watched>,
    /// Transitions from `set_targets`, handed out by the next `poll`.
    pending: Vec<Transition>,
    /// Scratch for `poll`: one entry per check in flight, and whose it is.
    fds: Vec<libc::pollfd>,
    owners: Vec<usize>,
}

/// One target, its state and its check in flight.
struct Watched {
    target: Target,
    tally: Tally,
    /// When the next check is due; while a check is in flight, when the one after it is.
    due: Instant,
    probe: Option<Probe>,
}

impl Default for Checker {
    fn default() -> Self {
        Checker::new()
    }
}

impl Checker {
    pub fn new() -> Checker {
        Checker { watched: Vec::new(), pending: Vec::new(), fds: Vec::new(), owners: Vec::new() }
    }

    /// Replaces the set of targets (on start and on every reload). A target that stays (same
    /// service and backend) keeps its state and counters: up stays up, down stays down, as
    /// keepalived keeps them. If its check is the same it keeps its schedule and check in
    /// flight; if its check changed, the check in flight is dropped and the next one, with the
    /// new settings, is due at once (plus the jitter). A new target starts down and must pass
    /// `rise` checks in a row to come up; its first check is due at once (plus a jitter of at
    /// most `min(interval / 10, 100ms)`). A target listed twice is checked once.
    pub fn set_targets(&mut self, targets: Vec<Target>) {
        let now = Instant::now();
        let mut old: HashMap<(String, SocketAddrV4), Watched> = self
            .watched
            .drain(..)
            .map(|watched| ((watched.target.service.clone(), watched.target.backend), watched))
            .collect();
        let mut seen = HashMap::with_capacity(targets.len());
        for target in targets {
            let key = (target.service.clone(), target.backend);
            if seen.insert(key.clone(), ()).is_some() {
                continue;
            }
            match old.remove(&key) {
                Some(kept) if kept.target.spec == target.spec => self.watched.push(kept),
                Some(kept) => {
                    // New settings from the next check on; the state stays.
                    let due = now + jitter(&target);
                    self.watched.push(Watched { target, tally: kept.tally.restarted(), due, probe: None });
                }
                None => {
                    let due = now + jitter(&target);
                    self.watched.push(Watched { target, tally: Tally::default(), due, probe: None });
                }
            }
        }
    }

    /// Starts due checks, services sockets for at most `wait`, finishes checks that completed
    /// or timed out, and returns the state changes (each after `rise` successes or `fall`
    /// failures in a row). Returns early, once due checks are started, when there is a change
    /// to report. Replies that arrived while the caller was away are read before any deadline
    /// is judged, so that a slow caller does not fail healthy backends.
    pub fn poll(&mut self, wait: Duration) -> Vec<Transition> {
        let end = Instant::now() + wait;
        let mut changes = mem::take(&mut self.pending);
        self.service(Duration::ZERO, &mut changes);
        loop {
            let now = Instant::now();
            self.expire(now, &mut changes);
            self.start_due(now, &mut changes);
            if !changes.is_empty() || now >= end {
                return changes;
            }
            let until = self.next_event(end);
            self.service(until.saturating_duration_since(now), &mut changes);
        }
    }

    /// The sockets of the checks in flight, appended to `fds`, for a caller that waits on
    /// them together with others and then calls `poll` with no wait.
    pub fn interests(&self, fds: &mut Vec<libc::pollfd>) {
        fds.extend(self.watched.iter().filter_map(|watched| watched.probe.as_ref().map(Probe::interest)));
    }

    /// When `poll` next has something to do without any socket waking it: the nearest deadline
    /// of a check in flight or check due; None with no targets. Changes from `set_targets`
    /// are due at once.
    pub fn next_due(&self) -> Option<Instant> {
        if !self.pending.is_empty() {
            return Some(Instant::now());
        }
        self.watched.iter().map(|watched| watched.probe.as_ref().map_or(watched.due, |probe| probe.deadline)).min()
    }

    /// Per target, in the order given to `set_targets`: (service, backend, up, checks ok so
    /// far, checks failed so far).
    pub fn states(&self) -> impl Iterator<Item = (&str, SocketAddrV4, bool, u64, u64)> + '_ {
        self.watched.iter().map(|watched| {
            let Watched { target, tally, .. } = watched;
            (target.service.as_str(), target.backend, tally.up, tally.ok, tally.failed)
        })
    }

    /// How many targets are checked.
    pub fn len(&self) -> usize {
        self.watched.len()
    }

    pub fn is_empty(&self) -> bool {
        self.watched.is_empty()
    }

    /// Fails every check in flight past its deadline.
    fn expire(&mut self, now: Instant, changes: &mut Vec<Transition>) {
        for index in 0..self.watched.len() {
            let watched = &mut self.watched[index];
            if watched.probe.as_ref().is_some_and(|probe| probe.deadline <= now) {
                watched.probe = None;
                let reason = format!("timeout after {:?}", watched.target.spec.timeout);
                self.finish(index, Err(reason), changes);
            }
        }
    }

    /// Starts the checks that are due, for targets with none in flight.
    fn start_due(&mut self, now: Instant, changes: &mut Vec<Transition>) {
        for index in 0..self.watched.len() {
            let watched = &mut self.watched[index];
            if watched.probe.is_some() || watched.due > now {
                continue;
            }
            let interval = watched.target.spec.interval.max(MIN_INTERVAL);
            watched.due += interval;
            if watched.due <= now {
                watched.due = now + interval;
            }
            match Probe::start(&watched.target.spec, watched.target.backend, now) {
                Step::Pending(probe) => watched.probe = Some(probe),
                Step::Done(outcome) => self.finish(index, outcome, changes),
            }
        }
    }

    /// The nearest of `end`, a deadline of a check in flight, and a check due.
    fn next_event(&self, end: Instant) -> Instant {
        self.next_due().map_or(end, |due| due.min(end))
    }

    /// Waits up to `wait` for any check in flight to be ready, and moves the ready ones on.
    fn service(&mut self, wait: Duration, changes: &mut Vec<Transition>) {
        self.fds.clear();
        self.owners.clear();
        for (index, watched) in self.watched.iter().enumerate() {
            if let Some(probe) = &watched.probe {
                self.fds.push(probe.interest());
                self.owners.push(index);
            }
        }
        if self.fds.is_empty() && wait.is_zero() {
            return;
        }
        // An error here (ENOMEM) leaves every check waiting for its deadline: the next round
        // tries again, and checks that cannot be serviced time out as they should.
        if poller::wait(&mut self.fds, wait).is_err() {
            return;
        }
        for slot in 0..self.fds.len() {
            if self.fds[slot].revents == 0 {
                continue;
            }
            let index = self.owners[slot];
            let watched = &mut self.watched[index];
            let Some(probe) = watched.probe.take() else {
                continue;
            };
            match probe.advance(&watched.target.spec, watched.target.backend) {
                Step::Pending(probe) => watched.probe = Some(probe),
                Step::Done(outcome) => self.finish(index, outcome, changes),
            }
        }
    }

    /// Counts a finished check and reports a change of state.
    fn finish(&mut self, index: usize, outcome: Outcome, changes: &mut Vec<Transition>) {
        let watched = &mut self.watched[index];
        let spec = &watched.target.spec;
        if let Some(reason) = watched.tally.record(outcome, spec.rise, spec.fall) {
            changes.push(Transition {
                service: watched.target.service.clone(),
                backend: watched.target.backend,
                up: watched.tally.up,
                reason,
            });
        }
    }
}

/// The delay of a target's first check: a hash of its service and backend (FNV-1a, so that it
/// is the same on every build) over at most a tenth of its interval, capped at `MAX_JITTER`.
fn jitter(target: &Target) -> Duration {
    let span = (target.spec.interval / 10).min(MAX_JITTER);
    let span_micros = span.as_micros() as u64;
    if span_micros == 0 {
        return Duration::ZERO;
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let address = target.backend.ip().octets();
    let port = target.backend.port().to_be_bytes();
    for &byte in target.service.as_bytes().iter().chain(&[0]).chain(&address).chain(&port) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    Duration::from_micros(hash % span_micros)
}
