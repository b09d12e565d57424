//! The appliance-wide sections: `[dpdk]`, `[cpu]`, `[api]`, `[sessions]`, `[steering]`
//! and `[timeouts]`. A missing section or key takes its default.

use std::net::SocketAddr;
use std::path::Path;

use toml::Spanned;

use super::diagnostic::Report;
use super::model::{Api, Cpu, Dpdk, Sessions, Steering, Timeouts};
use super::raw;
use super::value::{at, bounded, duration, keyword, plural, FirstSeen};
use super::Host;

/// The smallest mbuf pool that can fill the rx rings of a port.
pub const MIN_MBUFS: u32 = 1023;
/// Descriptors of each rx ring Sluice asks for (a driver may grant fewer, never more).
pub const RX_RING: u32 = 1024;
/// Mbufs each lcore may keep in its cache of the pool.
pub const MBUF_CACHE: u32 = 256;
/// Mbufs in flight beyond the rings: tx rings draining, packets held for ARP, redirects.
pub const MBUF_HEADROOM: u32 = 1024;
/// The most sessions one worker's table can hold (session ids are 28 bits).
pub const MAX_SESSIONS: u32 = 1 << 28;

/// The mbufs `workers` workers on `interfaces` interfaces need at least: every rx ring of every
/// port and of its kernel interface (one queue per worker each) filled, every lcore's cache
/// (the workers' and the control core's) full, and headroom for what is in flight.
pub fn mbufs_needed(workers: usize, interfaces: usize) -> u64 {
    let rings = 2 * u64::from(RX_RING) * workers as u64 * interfaces as u64;
    rings + u64::from(MBUF_CACHE) * (workers as u64 + 1) + u64::from(MBUF_HEADROOM)
}

/// Refuses a pool that cannot fill the rings of the ports and queues the config asks for.
pub fn check_mbufs(
    report: &mut Report,
    table: Option<&Spanned<raw::Dpdk>>,
    mbufs: u32,
    workers: usize,
    interfaces: usize,
) {
    let needed = mbufs_needed(workers, interfaces);
    if u64::from(mbufs) >= needed {
        return;
    }
    let place = table.map_or(0, |t| t.get_ref().mbufs.as_ref().map_or(at(t), at));
    let message = format!(
        "dpdk.mbufs is {mbufs}, but {workers} worker(s) on {interfaces} interface(s) need at least {needed}: \
         rx rings of {RX_RING} on every port and kernel interface, per-core caches of {MBUF_CACHE}, and {MBUF_HEADROOM} in flight"
    );
    report.error(place, message);
}

pub fn dpdk(report: &mut Report, table: Option<&Spanned<raw::Dpdk>>) -> Dpdk {
    let mut dpdk = Dpdk::default();
    let Some(table) = table.map(Spanned::get_ref) else {
        return dpdk;
    };
    if let Some(args) = &table.args {
        for arg in args.get_ref() {
            if let Some(owned) = sluice_owned_eal_option(arg.get_ref()) {
                let message = format!(
                    "dpdk.args must not set {owned}: Sluice derives lcores from [cpu] and memory options from dpdk.hugepages"
                );
                report.error(at(arg), message);
            }
            dpdk.args.push(arg.get_ref().clone());
        }
    }
    if let Some(hugepages) = &table.hugepages {
        dpdk.hugepages = *hugepages.get_ref();
    }
    if let Some(mbufs) = &table.mbufs {
        let n = *mbufs.get_ref();
        if n < i64::from(MIN_MBUFS) {
            let message = format!(
                "dpdk.mbufs must be at least {MIN_MBUFS}, got {n}: the pool must hold enough mbufs to fill the rx rings"
            );
            report.error(at(mbufs), message);
        } else if let Some(n) = bounded(report, mbufs, "dpdk.mbufs", MIN_MBUFS, u32::MAX) {
            dpdk.mbufs = n;
        }
    }
    dpdk
}

/// EAL options that Sluice sets itself (docs/architecture.md): giving them twice would
/// either be refused by the EAL or silently disagree with `[cpu]`.
fn sluice_owned_eal_option(arg: &str) -> Option<&'static str> {
    const OWNED: [&str; 9] =
        ["-l", "-c", "--lcores", "--main-lcore", "--no-huge", "--in-memory", "--no-shconf", "--file-prefix", "-m"];
    let name = arg.split('=').next().unwrap_or(arg);
    OWNED.into_iter().find(|&o| name == o || (o.len() == 2 && name.starts_with(o) && !name.starts_with("--")))
}

pub fn cpu(report: &mut Report, table: Option<&Spanned<raw::Cpu>>, host: &Host) -> Cpu {
    let defaults = Cpu::default();
    // Defaults are checked against the host too; their problems go to the section's
    // header, or to the top of the file when there is no [cpu] at all.
    let header = table.map_or(0, at);
    let table = table.map(Spanned::get_ref);

    let control = match table.and_then(|t| t.control.as_ref()) {
        Some(control) => core(report, *control.get_ref(), at(control), host),
        None => core(report, defaults.control as i64, header, host),
    };
    let workers = match table.and_then(|t| t.workers.as_ref()) {
        Some(list) => workers(report, list, host),
        None => default_workers(report, &defaults.workers, header, host),
    };
    for &(worker, place) in &workers {
        if Some(worker) == control {
            let message = format!("worker {worker} shares the control core; fine for tests, not for production");
            report.warning(place, message);
        }
    }
    let idle = table.and_then(|t| t.idle.as_ref()).and_then(|idle| keyword(report, idle));
    Cpu {
        control: control.unwrap_or(defaults.control),
        workers: workers.into_iter().map(|(worker, _)| worker).collect(),
        idle: idle.unwrap_or(defaults.idle),
    }
}

/// The valid worker cores, each with its place in the file.
fn workers(report: &mut Report, list: &raw::List<i64>, host: &Host) -> Vec<(usize, usize)> {
    if list.get_ref().is_empty() {
        report.error(at(list), "cpu.workers is empty: at least one worker core is needed");
    }
    let mut seen = FirstSeen::default();
    let mut workers = Vec::new();
    for worker in list.get_ref() {
        let (n, place) = (*worker.get_ref(), at(worker));
        if seen.claim(report, n, place, format_args!("worker core {n}")) {
            workers.extend(core(report, n, place, host).map(|core| (core, place)));
        }
    }
    workers
}

fn default_workers(report: &mut Report, cores: &[usize], header: usize, host: &Host) -> Vec<(usize, usize)> {
    let mut workers = Vec::new();
    for &core in cores {
        if core < host.cpus {
            workers.push((core, header));
        } else {
            let message = format!("{} (cpu.workers defaults to {cores:?})", missing_core(core, host));
            report.error(header, message);
        }
    }
    workers
}

/// A core number that exists on this host.
fn core(report: &mut Report, n: i64, place: usize, host: &Host) -> Option<usize> {
    let Ok(core) = usize::try_from(n) else {
        report.error(place, format!("core {n} is not a CPU number: cores count from 0"));
        return None;
    };
    if core >= host.cpus {
        report.error(place, missing_core(core, host));
        return None;
    }
    Some(core)
}

fn missing_core(core: usize, host: &Host) -> String {
    format!("core {core} does not exist: this machine has {}", plural(host.cpus, "CPU"))
}

pub fn api(report: &mut Report, table: Option<&Spanned<raw::Api>>) -> Api {
    let mut api = Api::default();
    let Some(table) = table.map(Spanned::get_ref) else {
        return api;
    };
    if let Some(socket) = &table.socket {
        let path = Path::new(socket.get_ref());
        if path.is_absolute() {
            api.socket = path.to_path_buf();
        } else {
            let message = format!("api.socket must be an absolute path, got {:?}", socket.get_ref());
            report.error(at(socket), message);
        }
    }
    if let Some(metrics) = &table.metrics {
        match metrics.get_ref().parse::<SocketAddr>() {
            Ok(addr) => api.metrics = addr,
            Err(_) => report.error(
                at(metrics),
                format!(
                    r#"invalid api.metrics {:?}: expected a socket address ip:port, e.g. "127.0.0.1:9273""#,
                    metrics.get_ref()
                ),
            ),
        }
    }
    api
}

pub fn sessions(report: &mut Report, table: Option<&Spanned<raw::Sessions>>) -> Sessions {
    let mut sessions = Sessions::default();
    let capacity = table.and_then(|t| t.get_ref().capacity.as_ref());
    if let Some(capacity) = capacity {
        let n = bounded(report, capacity, "sessions.capacity", 1, MAX_SESSIONS);
        sessions.capacity = n.unwrap_or(sessions.capacity);
    }
    if let Some(when_full) = table.and_then(|t| t.get_ref().when_full.as_ref()) {
        sessions.when_full = keyword(report, when_full).unwrap_or(sessions.when_full);
    }
    sessions
}

pub fn steering(report: &mut Report, table: Option<&Spanned<raw::Steering>>) -> Steering {
    let mut steering = Steering::default();
    if let Some(mode) = table.and_then(|t| t.get_ref().mode.as_ref()) {
        steering.mode = keyword(report, mode).unwrap_or(steering.mode);
    }
    steering
}

pub fn timeouts(report: &mut Report, table: Option<&Spanned<raw::Timeouts>>) -> Timeouts {
    let mut timeouts = Timeouts::default();
    let Some(table) = table.map(Spanned::get_ref) else {
        return timeouts;
    };
    let fields = [
        (&table.tcp_syn, &mut timeouts.tcp_syn),
        (&table.tcp_established, &mut timeouts.tcp_established),
        (&table.tcp_fin_wait, &mut timeouts.tcp_fin_wait),
        (&table.tcp_close_wait, &mut timeouts.tcp_close_wait),
        (&table.tcp_last_ack, &mut timeouts.tcp_last_ack),
        (&table.tcp_time_wait, &mut timeouts.tcp_time_wait),
        (&table.tcp_closing, &mut timeouts.tcp_closing),
        (&table.udp, &mut timeouts.udp),
        (&table.udp_new, &mut timeouts.udp_new),
    ];
    for (written, slot) in fields {
        if let Some(value) = written.as_ref().and_then(|v| duration(report, v)) {
            *slot = value;
        }
    }
    timeouts
}

#[cfg(test)]
mod tests;
