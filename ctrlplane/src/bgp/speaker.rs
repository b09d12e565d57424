//! The thread that keeps BIRD running and announcing what the appliance wants.
//!
//! The control loop hands it the candidates (`set_routes`) and, on reload, a new `[bgp]`
//! (`reconfigure`); it reads back a `SpeakerStatus`. Neither call waits for BIRD. The thread,
//! every `TICK` or when woken:
//! - forwards BIRD's log lines;
//! - notices BIRD exiting and starts it again after a backoff (doubling from `BACKOFF_MIN` to
//!   `BACKOFF_MAX`, back to the minimum once BIRD has run for `BACKOFF_RESET`);
//! - writes the files that changed (atomically: a new file renamed over the old) and asks BIRD
//!   to `configure`, which changes the static routes without touching the BGP sessions;
//! - reads `show protocols` every `POLL` for the neighbours' states.
//!
//! The thread starts BIRD and lives until `stop`, so BIRD dies with it (see `daemon`).

use std::fs;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::announce::{Candidate, RouteKind};
use super::bird_conf::{config_text, protocol_name, routes_text, Paths};
use super::birdc;
use super::daemon::{parse_check, resolve_binary, Daemon};
use crate::config::Bgp;

const TICK: Duration = Duration::from_millis(100);
const POLL: Duration = Duration::from_secs(1);
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
const BACKOFF_RESET: Duration = Duration::from_secs(60);
/// How long one exchange with BIRD may take.
const BIRDC_TIMEOUT: Duration = Duration::from_secs(2);
/// How long BIRD gets to close its sessions when stopped, before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(2);
/// A failing `configure` is retried this often, and logged once per change of its message.
const RETRY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warning,
    Error,
}

/// An event's structured fields (`peer`, `state`...), beside its line, for logs that keep them.
pub type Fields<'a> = &'a [(&'static str, String)];

/// Where a control-plane thread's log lines go (the BGP speaker's, the sync engine's): the
/// level, the line as written in the text log, and the event's fields.
pub type Log = Arc<dyn Fn(Level, &str, Fields) + Send + Sync>;

/// BIRD's process, as the supervisor sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BirdState {
    Running {
        pid: u32,
    },
    /// Exited (or failed to start); started again in this long.
    Restarting {
        after: Duration,
    },
    Stopped,
}

impl BirdState {
    pub fn name(&self) -> &'static str {
        match self {
            BirdState::Running { .. } => "running",
            BirdState::Restarting { .. } => "restarting",
            BirdState::Stopped => "stopped",
        }
    }
}

/// One neighbour's BGP session, from BIRD's `show protocols`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeighborState {
    pub address: Ipv4Addr,
    pub remote_as: u32,
    /// The session is established.
    pub up: bool,
    /// BIRD's protocol state (`up`, `start`, `down`) and info (`Established`, `Active`, ...).
    pub state: String,
    pub info: String,
}

/// What the speaker reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpeakerStatus {
    pub bird: BirdState,
    /// Times BIRD was started again after it exited.
    pub restarts: u64,
    pub neighbors: Vec<NeighborState>,
    /// The candidates last given, each with whether BIRD announces it now: announced, loaded
    /// by a running BIRD.
    pub routes: Vec<(Candidate, bool)>,
    /// Whether BIRD has loaded the latest candidates (or is not running, so announces nothing).
    pub settled: bool,
}

struct Inner {
    routes: Vec<Candidate>,
    routes_generation: u64,
    bgp: Bgp,
    config_generation: u64,
    stop: bool,
    status: SpeakerStatus,
}

struct Shared {
    inner: Mutex<Inner>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic on the speaker thread is caught below; the data stays usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The running speaker; `stop` ends it and BIRD.
pub struct Speaker {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// Checks before the appliance starts anything, so that a problem is a clear start-up error:
/// the binary exists, the runtime directory can be made and no BIRD answers in it, and BIRD
/// accepts the configuration Sluice generates. Returns the binary's path.
pub fn preflight(bgp: &Bgp) -> Result<PathBuf, String> {
    let binary = resolve_binary(&bgp.bird)?;
    let paths = Paths::new(&bgp.runtime_dir);
    fs::create_dir_all(&paths.dir).map_err(|e| format!("[bgp] runtime_dir {}: {e}", paths.dir.display()))?;
    if paths.socket.exists() {
        if birdc::command(&paths.socket, "show status", Duration::from_millis(500)).is_ok() {
            return Err(format!(
                "[bgp] runtime_dir {}: another BIRD answers on {}; each Sluice needs its own runtime_dir",
                paths.dir.display(),
                paths.socket.display()
            ));
        }
        // Left by a BIRD that is gone.
        let _ = fs::remove_file(&paths.socket);
    }
    write_atomically(&paths.config, &config_text(bgp, &paths))?;
    write_atomically(&paths.routes, &routes_text([]))?;
    write_atomically(&paths.backup, &routes_text([]))?;
    parse_check(&binary, &paths.config)?;
    Ok(binary)
}

impl Speaker {
    /// Starts the thread, which starts BIRD announcing nothing until `set_routes`.
    pub fn start(bgp: Bgp, binary: PathBuf, log: Log) -> Result<Speaker, String> {
        let status = SpeakerStatus {
            bird: BirdState::Restarting { after: Duration::ZERO },
            restarts: 0,
            neighbors: neighbors_down(&bgp),
            routes: Vec::new(),
            settled: false,
        };
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                routes: Vec::new(),
                routes_generation: 1,
                bgp,
                config_generation: 1,
                stop: false,
                status,
            }),
            wake: Condvar::new(),
        });
        let worker = shared.clone();
        let thread = std::thread::Builder::new()
            .name("sluice-bgp".into())
            .spawn(move || {
                let mut supervisor = Supervisor::new(binary, worker.clone(), log.clone());
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| supervisor.run()));
                if outcome.is_err() {
                    // BIRD dies with this thread: its routes go with it.
                    log(Level::Error, "bgp: the speaker thread failed; BIRD is stopped and nothing is announced", &[]);
                    worker.lock().status.bird = BirdState::Stopped;
                }
            })
            .map_err(|e| format!("cannot start the bgp thread: {e}"))?;
        Ok(Speaker { shared, thread: Some(thread) })
    }

    /// What BIRD should announce; applied by the thread as soon as it can. Repeating the same
    /// candidates changes nothing.
    pub fn set_routes(&self, routes: Vec<Candidate>) {
        let mut inner = self.shared.lock();
        if inner.routes != routes {
            inner.routes = routes;
            inner.routes_generation += 1;
            inner.status.settled = false;
            self.shared.wake.notify_all();
        }
    }

    /// A reloaded `[bgp]` (same binary and runtime directory): BIRD is reconfigured, and only
    /// protocols whose settings changed restart.
    pub fn reconfigure(&self, bgp: Bgp) {
        let mut inner = self.shared.lock();
        if inner.bgp != bgp {
            inner.status.neighbors = merge_neighbors(&bgp, &inner.status.neighbors);
            inner.bgp = bgp;
            inner.config_generation += 1;
            inner.status.settled = false;
            self.shared.wake.notify_all();
        }
    }

    pub fn status(&self) -> SpeakerStatus {
        self.shared.lock().status.clone()
    }

    /// Stops BIRD (it closes its sessions, so routers drop this node's routes) and the thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.shared.lock().stop = true;
        self.shared.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Speaker {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The thread's own state.
struct Supervisor {
    binary: PathBuf,
    shared: Arc<Shared>,
    log: Log,
    paths: Paths,
    daemon: Option<Daemon>,
    restart_at: Instant,
    backoff: Duration,
    /// (routes, config) generations last taken from the control loop, on disk, and loaded by
    /// the running BIRD.
    seen: (u64, u64),
    written: (u64, u64),
    loaded: (u64, u64),
    next_poll: Instant,
    retry_at: Instant,
    last_failure: String,
}

/// A line without fields.
fn say(log: &Log, level: Level, line: &str) {
    log(level, line, &[]);
}

impl Supervisor {
    fn new(binary: PathBuf, shared: Arc<Shared>, log: Log) -> Supervisor {
        let paths = Paths::new(&shared.lock().bgp.runtime_dir);
        let now = Instant::now();
        Supervisor {
            binary,
            shared,
            log,
            paths,
            daemon: None,
            restart_at: now,
            backoff: BACKOFF_MIN,
            seen: (0, 0),
            written: (0, 0),
            loaded: (0, 0),
            next_poll: now,
            retry_at: now,
            last_failure: String::new(),
        }
    }

    fn run(&mut self) {
        loop {
            let (routes, bgp, wanted, stop) = self.wait();
            self.seen = wanted;
            if stop {
                if let Some(daemon) = self.daemon.take() {
                    let pid = daemon.pid();
                    let status = daemon.stop(STOP_GRACE);
                    say(&self.log, Level::Info, &format!("bgp: bird (pid {pid}) stopped ({})", describe(status)));
                }
                let mut inner = self.shared.lock();
                inner.status.bird = BirdState::Stopped;
                inner.status.neighbors = neighbors_down(&inner.bgp);
                inner.status.settled = true;
                mark(&mut inner.status, &routes, false);
                return;
            }
            self.forward_log();
            self.supervise();
            if self.written != wanted {
                self.write_files(&routes, &bgp, wanted);
            }
            if self.daemon.is_none() && Instant::now() >= self.restart_at {
                self.start_bird();
            }
            if self.daemon.is_some() && self.loaded != self.written && Instant::now() >= self.retry_at {
                self.configure();
            }
            let now = Instant::now();
            let neighbors = if self.daemon.is_some() && now >= self.next_poll {
                self.next_poll = now + POLL;
                Some(self.neighbors(&bgp))
            } else {
                None
            };
            self.publish(&routes, wanted, neighbors);
        }
    }

    /// Waits for a change or a tick; returns what to work towards.
    fn wait(&self) -> (Vec<Candidate>, Bgp, (u64, u64), bool) {
        let inner = self.shared.lock();
        let idle = |i: &mut Inner| !i.stop && (i.routes_generation, i.config_generation) == self.seen;
        let (inner, _) = self.shared.wake.wait_timeout_while(inner, TICK, idle).unwrap_or_else(|e| e.into_inner());
        (inner.routes.clone(), inner.bgp.clone(), (inner.routes_generation, inner.config_generation), inner.stop)
    }

    fn forward_log(&mut self) {
        if let Some(daemon) = &mut self.daemon {
            for line in daemon.log_lines() {
                say(&self.log, Level::Info, &format!("bird: {line}"));
            }
        }
    }

    /// Notices BIRD exiting and schedules its restart.
    fn supervise(&mut self) {
        let Some(daemon) = &mut self.daemon else { return };
        if daemon.started.elapsed() >= BACKOFF_RESET {
            self.backoff = BACKOFF_MIN;
        }
        let Some(status) = daemon.exited() else { return };
        for line in daemon.log_lines() {
            say(&self.log, Level::Info, &format!("bird: {line}"));
        }
        say(
            &self.log,
            Level::Error,
            &format!(
                "bgp: bird (pid {}) exited ({}); nothing is announced until it runs again in {:?}",
                daemon.pid(),
                describe(Some(status)),
                self.backoff
            ),
        );
        self.daemon = None;
        self.loaded = (0, 0);
        self.restart_at = Instant::now() + self.backoff;
        let mut inner = self.shared.lock();
        inner.status.bird = BirdState::Restarting { after: self.backoff };
        inner.status.restarts += 1;
        inner.status.neighbors = neighbors_down(&inner.bgp);
        drop(inner);
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }

    fn write_files(&mut self, routes: &[Candidate], bgp: &Bgp, wanted: (u64, u64)) {
        let announced = |backup: bool| {
            routes
                .iter()
                .filter(move |c| c.announced() && (c.kind == RouteKind::PeerLocalIp) == backup)
                .map(|c| c.address)
        };
        let mut written = self.written;
        if written.1 != wanted.1 {
            match write_atomically(&self.paths.config, &config_text(bgp, &self.paths)) {
                Ok(()) => written.1 = wanted.1,
                Err(e) => say(&self.log, Level::Error, &format!("bgp: {e}")),
            }
        }
        if written.0 != wanted.0 {
            let done = write_atomically(&self.paths.backup, &routes_text(announced(true)))
                .and_then(|()| write_atomically(&self.paths.routes, &routes_text(announced(false))));
            match done {
                Ok(()) => written.0 = wanted.0,
                Err(e) => say(&self.log, Level::Error, &format!("bgp: {e}")),
            }
        }
        self.written = written;
    }

    fn start_bird(&mut self) {
        // Left by a BIRD that was killed: the new one could not bind it.
        let _ = fs::remove_file(&self.paths.socket);
        match Daemon::spawn(&self.binary, &self.paths.config, &self.paths.socket) {
            Ok(daemon) => {
                say(
                    &self.log,
                    Level::Info,
                    &format!(
                        "bgp: bird started (pid {}, control socket {})",
                        daemon.pid(),
                        self.paths.socket.display()
                    ),
                );
                // BIRD reads its files before it opens its socket: what is on disk is loaded,
                // or BIRD exits and is noticed.
                self.loaded = self.written;
                self.next_poll = Instant::now() + TICK;
                self.shared.lock().status.bird = BirdState::Running { pid: daemon.pid() };
                self.daemon = Some(daemon);
            }
            Err(e) => {
                say(&self.log, Level::Error, &format!("bgp: {e}; trying again in {:?}", self.backoff));
                self.restart_at = Instant::now() + self.backoff;
                self.shared.lock().status.bird = BirdState::Restarting { after: self.backoff };
                self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
            }
        }
    }

    fn configure(&mut self) {
        let target = self.written;
        match birdc::configure(&self.paths.socket, BIRDC_TIMEOUT) {
            Ok(()) => {
                self.loaded = target;
                self.last_failure.clear();
                // Show the neighbours as they are after the change.
                self.next_poll = Instant::now();
            }
            Err(e) => {
                // BIRD just started and has no socket yet, or refuses: retry, say it once.
                let fresh = self.daemon.as_ref().is_some_and(|d| d.started.elapsed() < Duration::from_secs(2));
                if e != self.last_failure && !fresh {
                    say(&self.log, Level::Warning, &format!("bgp: configure: {e}; retrying every {RETRY:?}"));
                    self.last_failure = e;
                }
                self.retry_at = Instant::now() + if fresh { TICK } else { RETRY };
            }
        }
    }

    fn neighbors(&self, bgp: &Bgp) -> Vec<NeighborState> {
        let rows = match birdc::command(&self.paths.socket, "show protocols", BIRDC_TIMEOUT) {
            Ok(reply) if !reply.failed() => birdc::parse_protocols(&reply),
            _ => Vec::new(),
        };
        bgp.neighbors
            .iter()
            .map(|n| {
                let name = protocol_name(n.address);
                match rows.iter().find(|r| r.name == name) {
                    Some(row) => NeighborState {
                        address: n.address,
                        remote_as: n.remote_as,
                        up: row.established(),
                        state: row.state.clone(),
                        info: row.info.clone(),
                    },
                    None => down(n.address, n.remote_as),
                }
            })
            .collect()
    }

    fn publish(&self, routes: &[Candidate], wanted: (u64, u64), neighbors: Option<Vec<NeighborState>>) {
        let running = self.daemon.is_some();
        let current = self.loaded == wanted;
        let mut inner = self.shared.lock();
        if let Some(neighbors) = neighbors {
            // Log changes of session state, as BIRD's own log is terse about them.
            for n in &neighbors {
                let before = inner.status.neighbors.iter().find(|o| o.address == n.address);
                if before.is_some_and(|b| b.up != n.up) {
                    let (level, word) = if n.up { (Level::Info, "up") } else { (Level::Warning, "down") };
                    let line = format!("bgp: neighbor {} {word} ({} {})", n.address, n.state, n.info);
                    let fields =
                        [("neighbor", n.address.to_string()), ("up", n.up.to_string()), ("state", n.state.clone())];
                    (self.log)(level, &line, &fields);
                }
            }
            inner.status.neighbors = neighbors;
        }
        // Only what this pass worked on: a newer change waits for the next one.
        if (inner.routes_generation, inner.config_generation) == wanted {
            inner.status.settled = current || !running;
            mark(&mut inner.status, routes, running && current);
        }
    }
}

/// The status's routes: each candidate, announced when BIRD runs with it loaded.
fn mark(status: &mut SpeakerStatus, routes: &[Candidate], live: bool) {
    status.routes = routes.iter().map(|c| (*c, live && c.announced())).collect();
}

fn down(address: Ipv4Addr, remote_as: u32) -> NeighborState {
    NeighborState { address, remote_as, up: false, state: "down".into(), info: String::new() }
}

fn neighbors_down(bgp: &Bgp) -> Vec<NeighborState> {
    bgp.neighbors.iter().map(|n| down(n.address, n.remote_as)).collect()
}

/// The neighbours of a new `[bgp]`, keeping the known state of those that stay.
fn merge_neighbors(bgp: &Bgp, old: &[NeighborState]) -> Vec<NeighborState> {
    bgp.neighbors
        .iter()
        .map(|n| {
            old.iter()
                .find(|o| o.address == n.address && o.remote_as == n.remote_as)
                .cloned()
                .unwrap_or_else(|| down(n.address, n.remote_as))
        })
        .collect()
}

fn describe(status: Option<std::process::ExitStatus>) -> String {
    match status {
        Some(s) => s.to_string(),
        None => "status unknown".to_owned(),
    }
}

/// Writes `text` beside `path` and renames it over `path`: BIRD never reads half a file.
fn write_atomically(path: &Path, text: &str) -> Result<(), String> {
    let partial = path.with_extension("new");
    let write = || -> std::io::Result<()> {
        let mut file = fs::File::create(&partial)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        fs::rename(&partial, path)
    };
    write().map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests;
