//! What the control core tells operators: `sluicectl` answers and the Prometheus sample, from
//! the counters workers publish (relaxed reads of per-worker blocks, summed here), the ports'
//! own statistics, the model, and the workers' latest session dumps. Never waits on a worker.

use std::collections::HashMap;
use std::net::SocketAddrV4;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ctrlplane::api::{BackendStatus, PortStatus, Rates, ServiceStatus, SessionRow, Status, WorkerStatus};
use ctrlplane::config;
use ctrlplane::metrics::{self, BackendDirection, PortDirection, Sample};
use dataplane::counters::{ClientAddressResult, DropReason, WorkerCounters, SYNPROXY_RESULTS, WAIT_BOUNDS_US};
use dataplane::dpdk::{Port, PortStats};
use dataplane::dump::{Dump, DumpBox};
use dataplane::snapshot::BackendState;

use super::model::Model;

/// How often rates are computed and, while an operator is looking, session dumps asked for.
const PERIOD: Duration = Duration::from_secs(1);
/// Session dumps are kept fresh for this long after `sluicectl sessions`, and not at all
/// otherwise: a dump walks the worker's whole slab, which nobody should pay for unasked.
const DUMP_INTEREST: Duration = Duration::from_secs(10);
/// How long `sessions` waits for fresh dumps when the latest are older than `PERIOD`.
const DUMP_WAIT: Duration = Duration::from_secs(1);
/// Rows a worker puts in one session dump at most.
const DUMP_ROWS: usize = 10_000;

/// A port as the observer reads it.
pub struct PortView<'a> {
    pub name: &'a str,
    pub device: &'a str,
    pub port: &'a Port,
    pub steering: &'static str,
}

pub struct Observer {
    started: Instant,
    last: Instant,
    dumps: Vec<Arc<DumpBox>>,
    /// Each worker's latest dump and when it came back.
    latest: Vec<Option<(Dump, Instant)>>,
    /// Dumps are asked for until then (`DUMP_INTEREST` after the last `sessions`).
    dumps_wanted_until: Instant,
    ports_before: Vec<PortStats>,
    port_rates: Vec<(f64, f64)>,
    /// Per worker: its loop counters at the last period.
    polls_before: Vec<Polled>,
    busy: Vec<f64>,
    /// Per worker, over the last period: busy cycles per packet received, (own, driver).
    cycles_per_packet: Vec<(f64, f64)>,
    /// Per backend id: the address it has and its worker sums when it got that address, so
    /// that an id reused by another backend starts its counters from zero. Kept current by
    /// `track` after every model change.
    bases: HashMap<u16, (SocketAddrV4, [u64; 6])>,
    /// Per backend id: its sums at the last period, and its rates over that period.
    backend_rates: HashMap<u16, ([u64; 6], Rates)>,
}

impl Observer {
    pub fn new(dumps: Vec<Arc<DumpBox>>, ports: usize) -> Observer {
        let workers = dumps.len();
        Observer {
            started: Instant::now(),
            last: Instant::now(),
            latest: (0..workers).map(|_| None).collect(),
            dumps_wanted_until: Instant::now(),
            dumps,
            ports_before: vec![PortStats::default(); ports],
            port_rates: vec![(0.0, 0.0); ports],
            polls_before: vec![Polled::default(); workers],
            busy: vec![0.0; workers],
            cycles_per_packet: vec![(0.0, 0.0); workers],
            bases: HashMap::new(),
            backend_rates: HashMap::new(),
        }
    }

    /// Session dumps that came back replace the ones before.
    fn collect_dumps(&mut self) {
        for (i, exchange) in self.dumps.iter().enumerate() {
            if let Some(dump) = exchange.result() {
                self.latest[i] = Some((dump, Instant::now()));
            }
        }
    }

    fn ask_for_dumps(&self) {
        for exchange in &self.dumps {
            exchange.request(Dump::with_capacity(DUMP_ROWS));
        }
    }

    /// Once a period: rates; session dumps collected and, while wanted, asked for again.
    pub fn tick(&mut self, ports: &[PortView], counters: &[Arc<WorkerCounters>]) {
        self.collect_dumps();
        let elapsed = self.last.elapsed();
        if elapsed < PERIOD {
            return;
        }
        self.last = Instant::now();
        let secs = elapsed.as_secs_f64();
        for (i, p) in ports.iter().enumerate() {
            if let Ok(now) = p.port.stats() {
                let before = self.ports_before[i];
                self.port_rates[i] = (
                    (now.rx_packets - before.rx_packets.min(now.rx_packets)) as f64 / secs,
                    (now.tx_packets - before.tx_packets.min(now.tx_packets)) as f64 / secs,
                );
                self.ports_before[i] = now;
            }
        }
        for (i, c) in counters.iter().enumerate() {
            let now = Polled::read(c);
            let (busy, cycles_per_packet) = now.since(&self.polls_before[i]);
            self.busy[i] = busy;
            self.cycles_per_packet[i] = cycles_per_packet;
            self.polls_before[i] = now;
        }
        for &id in self.bases.keys() {
            let now = raw_sums(id, counters);
            let (before, rates) = self.backend_rates.entry(id).or_insert((now, Rates::default()));
            let per_second = |i: usize| now[i].saturating_sub(before[i]) as f64 / secs;
            *rates = Rates {
                connections: per_second(5),
                packets_to_backend: per_second(1),
                packets_from_backend: per_second(2),
                bytes_to_backend: per_second(3),
                bytes_from_backend: per_second(4),
            };
            *before = now;
        }
        if Instant::now() < self.dumps_wanted_until {
            self.ask_for_dumps();
        }
    }

    pub fn status(&self, ports: &[PortView], counters: &[Arc<WorkerCounters>], cpus: &[usize]) -> Status {
        Status {
            version: crate::version(),
            uptime_seconds: self.started.elapsed().as_secs(),
            workers: cpus
                .iter()
                .enumerate()
                .map(|(id, &cpu)| WorkerStatus { id, cpu, busy_ratio: self.busy[id] })
                .collect(),
            ports: ports
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let s = p.port.stats().unwrap_or_default();
                    PortStatus {
                        name: p.name.to_owned(),
                        device: p.device.to_owned(),
                        driver: p.port.driver().unwrap_or_default(),
                        steering: p.steering.to_owned(),
                        rx_pps: self.port_rates[i].0,
                        tx_pps: self.port_rates[i].1,
                        rx_packets: s.rx_packets,
                        tx_packets: s.tx_packets,
                        dropped: s.rx_missed + s.rx_nombuf + s.rx_errors + s.tx_errors,
                    }
                })
                .collect(),
            sessions: counters.iter().map(|c| c.services.iter().map(|s| s.sessions.get()).sum::<u64>()).sum(),
            bgp: None,
            cluster: None,
        }
    }

    /// Notes which backend each id stands for now (call after every reload): an id that
    /// changed hands starts counting again from the workers' sums at this moment.
    pub fn track(&mut self, model: &Model, counters: &[Arc<WorkerCounters>]) {
        for (_, _, members) in model.services() {
            for &id in members {
                let Some((address, _, _)) = model.backend(id) else { continue };
                match self.bases.get(&id) {
                    Some((known, _)) if *known == address => {}
                    Some(_) => {
                        let now = raw_sums(id, counters);
                        self.bases.insert(id, (address, now));
                    }
                    None => {
                        self.bases.insert(id, (address, [0; 6]));
                    }
                }
            }
        }
    }

    /// A backend's active sessions and its counters over all workers (`raw_sums`) less its base.
    fn backend_sums(&self, id: u16, address: SocketAddrV4, counters: &[Arc<WorkerCounters>]) -> [u64; 6] {
        let mut sums = raw_sums(id, counters);
        sums[0] = dataplane::counters::backend_active(counters.iter().map(|c| &**c), id);
        let base = match self.bases.get(&id) {
            Some((known, base)) if *known == address => *base,
            _ => [0; 6],
        };
        for i in 1..6 {
            sums[i] -= base[i].min(sums[i]);
        }
        sums
    }

    pub fn services(&mut self, model: &Model, counters: &[Arc<WorkerCounters>]) -> Vec<ServiceStatus> {
        let mut out = Vec::new();
        for (_, s, members) in model.services() {
            let mut backends = Vec::new();
            for &id in members {
                let Some((address, weight, state)) = model.backend(id) else { continue };
                let sums = self.backend_sums(id, address, counters);
                backends.push(BackendStatus {
                    address: address.to_string(),
                    weight,
                    state: state.name().to_owned(),
                    active_sessions: sums[0],
                    packets_to_backend: sums[1],
                    packets_from_backend: sums[2],
                    bytes_to_backend: sums[3],
                    bytes_from_backend: sums[4],
                    connections: sums[5],
                    rates: self.backend_rates.get(&id).map(|(_, r)| *r).unwrap_or_default(),
                });
            }
            out.push(ServiceStatus {
                name: s.name.clone(),
                protocol: format!("{:?}", s.protocol).to_lowercase(),
                vip: s.vip.to_string(),
                scheduler: format!("{:?}", s.scheduler).to_lowercase(),
                per_packet: s.per_packet,
                backends,
            });
        }
        out
    }

    /// Rows of the workers' dumps, at most `limit`: dumps at most `PERIOD` old, asked for and
    /// waited for (`DUMP_WAIT` at most) if the latest are older; kept fresh for a while after.
    pub fn sessions(&mut self, model: &Model, service: Option<&str>, limit: usize) -> Result<Vec<SessionRow>, String> {
        let names: HashMap<u16, &str> = model.services().map(|(slot, s, _)| (slot, s.name.as_str())).collect();
        if let Some(wanted) = service {
            if !names.values().any(|n| *n == wanted) {
                return Err(format!("no service {wanted}"));
            }
        }
        let asked = Instant::now();
        self.dumps_wanted_until = asked + DUMP_INTEREST;
        let fresh = |latest: &[Option<(Dump, Instant)>]| {
            latest.iter().all(|d| d.as_ref().is_some_and(|(_, at)| at.elapsed() <= PERIOD))
        };
        if !fresh(&self.latest) {
            self.ask_for_dumps();
            // A worker walks its slab a thousand slots a loop: a million sessions take a few ms.
            while asked.elapsed() < DUMP_WAIT {
                self.collect_dumps();
                if self.latest.iter().all(|d| d.as_ref().is_some_and(|(_, at)| *at >= asked)) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        let mut rows = Vec::new();
        for (dump, _) in self.latest.iter().flatten() {
            for r in &dump.rows {
                let Some(&name) = names.get(&r.service) else { continue };
                if service.is_some_and(|w| w != name) {
                    continue;
                }
                let backend = if r.backend.ip.is_unspecified() { "*".to_owned() } else { r.backend.to_string() };
                rows.push(SessionRow {
                    service: name.to_owned(),
                    client: r.client.to_string(),
                    vip: r.vip.to_string(),
                    local: r.local.to_string(),
                    backend,
                    state: r.state.name().to_owned(),
                    age_seconds: dump.now_ms.saturating_sub(r.created_ms) / 1000,
                });
                if rows.len() >= limit {
                    return Ok(rows);
                }
            }
        }
        Ok(rows)
    }

    pub fn sample(
        &mut self,
        ports: &[PortView],
        counters: &[Arc<WorkerCounters>],
        model: &Model,
        checks: &[(String, SocketAddrV4, u64, u64)],
    ) -> Sample {
        let mut s = Sample { version: crate::version(), ..Sample::default() };
        for p in ports {
            let st = p.port.stats().unwrap_or_default();
            let name = p.name.to_owned();
            for (direction, packets, bytes) in
                [(PortDirection::Rx, st.rx_packets, st.rx_bytes), (PortDirection::Tx, st.tx_packets, st.tx_bytes)]
            {
                s.port_packets.push(metrics::PortCount { interface: name.clone(), direction, value: packets });
                s.port_bytes.push(metrics::PortCount { interface: name.clone(), direction, value: bytes });
            }
            for (reason, value) in [
                ("imissed", st.rx_missed),
                ("nombuf", st.rx_nombuf),
                ("rx_errors", st.rx_errors),
                ("tx_errors", st.tx_errors),
            ] {
                s.port_dropped.push(metrics::PortDrops { interface: name.clone(), reason: reason.to_owned(), value });
            }
            s.port_steering.push(metrics::PortSteering { interface: name, mode: p.steering.to_owned() });
        }
        for (worker, c) in counters.iter().enumerate() {
            for reason in DropReason::ALL {
                s.packets_dropped.push(metrics::WorkerDrops {
                    worker,
                    reason: reason.name().to_owned(),
                    value: c.dropped(reason),
                });
            }
            s.worker_busy.push(metrics::WorkerBusy { worker, ratio: self.busy[worker] });
            let (own, driver) = self.cycles_per_packet[worker];
            for (part, cycles) in [("own", own), ("driver", driver)] {
                s.worker_cycles.push(metrics::WorkerCycles { worker, part, cycles });
            }
            s.sessions_expired.push(metrics::WorkerCount { worker, value: c.sessions_expired.get() });
            s.sessions_evicted.push(metrics::WorkerCount { worker, value: c.sessions_evicted.get() });
            s.neighbours.push(metrics::WorkerCount { worker, value: c.neighbours.get() });
            s.icmp_relayed.push(metrics::WorkerCount { worker, value: c.icmp_errors_relayed.get() });
            let seconds = c.longest_loop_cycles.get() as f64 / dataplane::dpdk::tsc_hz().max(1) as f64;
            s.longest_loop.push(metrics::WorkerSeconds { worker, seconds });
            s.packet_wait.push(packet_wait(worker, c));
            s.loops.push(metrics::WorkerCount { worker, value: c.polls.get() });
            for (direction, value) in [("out", c.redirected_out.get()), ("in", c.redirected_in.get())] {
                s.worker_redirected.push(metrics::WorkerRedirected { worker, direction, value });
            }
            for (slot, svc, _) in model.services() {
                let value = c.services.get(slot as usize).map_or(0, |x| x.sessions.get());
                s.sessions.push(metrics::ServiceSessions { service: svc.name.clone(), worker, value });
            }
            for slot in c.local_ports.iter() {
                let ip = slot.ip.load(std::sync::atomic::Ordering::Relaxed);
                if ip != 0 {
                    let local_ip = std::net::Ipv4Addr::from(ip).to_string();
                    s.local_ports_free.push(metrics::LocalPortsFree { local_ip, value: slot.free.get() });
                }
            }
        }
        for (slot, svc, members) in model.services() {
            let created = counters.iter().map(|c| c.services.get(slot as usize).map_or(0, |x| x.created.get())).sum();
            s.sessions_created.push(metrics::ServiceCount { service: svc.name.clone(), value: created });
            if svc.synproxy {
                for (i, result) in SYNPROXY_RESULTS.iter().enumerate() {
                    let value =
                        counters.iter().map(|c| c.services.get(slot as usize).map_or(0, |x| x.synproxy[i].get())).sum();
                    s.synproxy.push(metrics::ServiceResultCount { service: svc.name.clone(), result, value });
                }
            }
            if svc.client_address != config::ClientAddress::None {
                for result in ClientAddressResult::ALL {
                    let value = counters
                        .iter()
                        .map(|c| c.services.get(slot as usize).map_or(0, |x| x.client_address[result as usize].get()))
                        .sum();
                    s.client_address.push(metrics::ServiceResultCount {
                        service: svc.name.clone(),
                        result: result.name(),
                        value,
                    });
                }
            }
            for &id in members {
                let Some((address, weight, state)) = model.backend(id) else { continue };
                let (service, backend) = (svc.name.clone(), address.to_string());
                let sums = self.backend_sums(id, address, counters);
                s.backend_up.push(metrics::BackendUp {
                    service: service.clone(),
                    backend: backend.clone(),
                    up: state != BackendState::Down,
                });
                s.backend_weight.push(metrics::BackendWeight {
                    service: service.clone(),
                    backend: backend.clone(),
                    weight,
                });
                for (direction, packets, bytes) in
                    [(BackendDirection::ToBackend, sums[1], sums[3]), (BackendDirection::FromBackend, sums[2], sums[4])]
                {
                    s.backend_packets.push(metrics::BackendCount {
                        service: service.clone(),
                        backend: backend.clone(),
                        direction,
                        value: packets,
                    });
                    s.backend_bytes.push(metrics::BackendCount {
                        service: service.clone(),
                        backend: backend.clone(),
                        direction,
                        value: bytes,
                    });
                }
            }
        }
        for (service, backend, ok, fail) in checks {
            for (result, value) in [(metrics::CheckResult::Ok, *ok), (metrics::CheckResult::Fail, *fail)] {
                s.health_checks.push(metrics::HealthChecks {
                    service: service.clone(),
                    backend: backend.to_string(),
                    result,
                    value,
                });
            }
        }
        s
    }
}

/// `sluice_worker_packet_wait_seconds` of `worker`, from its per-bucket counts.
fn packet_wait(worker: usize, c: &WorkerCounters) -> metrics::WorkerHistogram {
    let mut count = 0;
    let mut buckets = Vec::with_capacity(WAIT_BOUNDS_US.len());
    for (us, n) in WAIT_BOUNDS_US.iter().zip(&c.packet_wait) {
        count += n.get();
        buckets.push((*us as f64 / 1e6, count));
    }
    count += c.packet_wait[WAIT_BOUNDS_US.len()].get();
    let sum_seconds = c.packet_wait_cycles.get() as f64 / dataplane::dpdk::tsc_hz().max(1) as f64;
    metrics::WorkerHistogram { worker, buckets, count, sum_seconds }
}

/// A backend's counters summed over the workers, at the indexes `backend_sums` gives them: 0
/// (its active sessions, a gauge, read by `backend_sums` alone), packets to it, from it, bytes
/// to it, from it, sessions opened.
fn raw_sums(id: u16, counters: &[Arc<WorkerCounters>]) -> [u64; 6] {
    let mut sums = [0u64; 6];
    for c in counters {
        if let Some(b) = c.backends.get(id as usize) {
            sums[1] += b.packets[0].get();
            sums[2] += b.packets[1].get();
            sums[3] += b.bytes[0].get();
            sums[4] += b.bytes[1].get();
            sums[5] += b.sessions.get();
        }
    }
    sums
}

/// A worker's loop counters at one moment (`WorkerCounters`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Polled {
    cycles: u64,
    busy: u64,
    timed: u64,
    driver: u64,
    packets: u64,
}

impl Polled {
    fn read(c: &WorkerCounters) -> Polled {
        Polled {
            cycles: c.cycles.get(),
            busy: c.busy_cycles.get(),
            timed: c.timed_busy_cycles.get(),
            driver: c.driver_cycles.get(),
            packets: c.rx_packets.get() + c.redirected_in.get() + c.from_kernel.get(),
        }
    }

    /// Since `before`: the busy ratio, and the busy cycles per packet received, Sluice's own
    /// and the drivers' (the drivers' share as in the timed sample of loops; zeros for a period
    /// without loops, packets or a timed loop).
    fn since(&self, before: &Polled) -> (f64, (f64, f64)) {
        let d = |now: u64, then: u64| now.saturating_sub(then) as f64;
        let cycles = d(self.cycles, before.cycles);
        let busy = d(self.busy, before.busy);
        let ratio = if cycles > 0.0 { busy / cycles } else { 0.0 };
        let (packets, timed) = (d(self.packets, before.packets), d(self.timed, before.timed));
        if packets == 0.0 || timed == 0.0 {
            return (ratio, (0.0, 0.0));
        }
        let driver = busy * (d(self.driver, before.driver) / timed).min(1.0);
        (ratio, ((busy - driver) / packets, driver / packets))
    }
}

#[cfg(test)]
mod tests {
    use super::Polled;

    #[test]
    fn cycles_per_packet_split_own_and_driver_work_over_the_period() {
        // 1,000 busy cycles for 10 packets; the timed loops among them spent 60 % in drivers.
        let before = Polled { cycles: 1_000, busy: 500, timed: 50, driver: 20, packets: 10 };
        let now = Polled { cycles: 3_000, busy: 1_500, timed: 150, driver: 80, packets: 20 };
        assert_eq!(now.since(&before), (0.5, (40.0, 60.0)));
        // Packets but no timed loop yet: no split.
        let untimed = Polled { timed: 50, driver: 20, ..now };
        assert_eq!(untimed.since(&before), (0.5, (0.0, 0.0)));
        // No packets: no per-packet figure; no loops: not busy.
        assert_eq!(before.since(&before), (0.0, (0.0, 0.0)));
        let idle = Polled { cycles: 2_000, ..before };
        assert_eq!(idle.since(&before), (0.0, (0.0, 0.0)));
    }
}
