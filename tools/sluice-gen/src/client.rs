//! The client side: every client at once, on the port that faces the balancer's client link,
//! on the main lcore. Four phases: resolve the balancer's MAC by ARP for the VIP (not in
//! `ceiling` mode, nor with `--client-peer-mac`); warm up (100 frames/s until one round trip
//! succeeded, at most 5 s; not counted); send for `--duration`, paced by the TSC, while
//! receiving and checking replies; drain replies for up to `--drain-ms`. With `--cores 1` the
//! same loop also polls the backend side.
//!
//! Owns the client port's queue 0, the latency histogram and the client counters. Per packet
//! it allocates only the mbuf it sends; replies are checked in place and freed, answers (ARP,
//! TCP) are written into the received mbuf.

use std::sync::atomic::{AtomicBool, Ordering};

use dataplane::dpdk::{tsc, Mbuf, PoolHandle, RxBurst, TxQueue, BURST};
use dataplane::wire::MacAddr;

use super::arp;
use super::backend::BackendSide;
use super::cli::{Mode, Options};
use super::histogram::{CyclesToNs, Histogram};
use super::pace::{Pacer, Rate};
use super::reply::Expect;
use super::report::{bad_summary, progress, BackendCounts, ClientCounts};
use super::tcp;
use super::udp::{Request, Stamp};

#[path = "client_inbound.rs"]
mod inbound;

/// How long the balancer has to answer the ARP request for the VIP, and how often it is asked.
const RESOLVE_S: u64 = 5;
const ASKS_PER_S: u64 = 4;
/// How long the path has to carry a first round trip, and the warm-up's rate meanwhile.
const WARM_UP_S: u64 = 5;
const WARM_UP_PER_S: u64 = 100;
/// Receive bursts per side and loop iteration while they come full: draining comes before
/// sending, so one loop serving both sides cannot flood its own backend side.
const DRAIN_BURSTS: usize = 4;

/// What the client side measured.
pub struct Measured {
    /// The backend side's counts when measuring began: subtract them from its final counts.
    pub backend_base: BackendCounts,
    pub counts: ClientCounts,
    pub latency: Histogram,
    /// Seconds from the start of sending to its end.
    pub send_s: f64,
}

pub struct Client {
    port: u16,
    mac: MacAddr,
    pool: PoolHandle,
    tx: TxQueue,
    mode: Mode,
    rate: Rate,
    duration_s: f64,
    drain_ms: u64,
    expect: Expect,
    /// The balancer's MAC: learned by ARP unless given (or, in ceiling mode, configured).
    peer: Option<MacAddr>,
    learn_peer: bool,
    request: Request,
    next_flow: u64,
    wrapped: bool,
    seq: u64,
    highest_seq: u64,
    latency: Histogram,
    to_ns: CyclesToNs,
    counts: ClientCounts,
    hz: u64,
}

impl Client {
    /// `backend_mac` is the Ethernet destination in ceiling mode unless `--client-peer-mac`.
    pub fn new(
        o: &Options,
        port: u16,
        mac: MacAddr,
        backend_mac: MacAddr,
        pool: PoolHandle,
        hz: u64,
    ) -> Result<Client, String> {
        let peer = match (o.mode, o.client_peer_mac) {
            (_, Some(m)) => Some(m),
            (Mode::Ceiling, None) => Some(backend_mac),
            _ => None,
        };
        let request = Request::new(mac, peer.unwrap_or(MacAddr::BROADCAST), o.vip, o.frame_len())?;
        Ok(Client {
            port,
            mac,
            pool,
            tx: TxQueue::new(port, 0),
            mode: o.mode,
            rate: o.rate,
            duration_s: o.duration_s,
            drain_ms: o.drain_ms,
            expect: Expect { vip: o.vip, space: o.space, flows: o.flows },
            peer,
            learn_peer: peer.is_none(),
            request,
            next_flow: 0,
            wrapped: false,
            seq: 0,
            highest_seq: 0,
            latency: Histogram::default(),
            to_ns: CyclesToNs::new(hz),
            counts: ClientCounts::default(),
            hz,
        })
    }

    /// Resolves, sends, drains; stops early (with what it has) when `stop` is set.
    pub fn run(mut self, backend: &mut BackendSide, stop: &AtomicBool) -> Result<Measured, String> {
        let mut rx = RxBurst::default();
        self.resolve(&mut rx, backend, stop)?;
        self.warm_up(&mut rx, backend, stop)?;
        let backend_base = backend.counts();
        let hz = self.hz;
        let start = tsc();
        let end = start + (self.duration_s * hz as f64) as u64;
        let mut pacer = Pacer::new(self.rate, hz, start);
        let (mut next_report, mut last_report) = (start + hz, start);
        let mut last = (self.counts, backend_base);
        let (mut prev, mut was_busy) = (start, false);
        loop {
            let now = tsc();
            if was_busy {
                self.counts.busy_cycles += now - prev;
            }
            prev = now;
            if now >= end || stop.load(Ordering::Relaxed) {
                break;
            }
            let work = self.send(&mut pacer, now) + self.drain(&mut rx, backend, now);
            was_busy = work > 0;
            if now >= next_report {
                let b = backend.counts().since(backend_base);
                let line = progress(
                    (now - start) as f64 / hz as f64,
                    (now - last_report) as f64 / hz as f64,
                    &self.counts,
                    &b,
                    &last,
                );
                eprintln!("{line}");
                (last, last_report, next_report) = ((self.counts, b), now, next_report + hz);
            }
        }
        let send_end = prev;
        let drain_end = send_end + self.drain_ms * hz / 1000;
        loop {
            let now = tsc();
            if was_busy {
                self.counts.busy_cycles += now - prev;
            }
            prev = now;
            if now >= drain_end || self.all_answered() || stop.load(Ordering::Relaxed) {
                break;
            }
            was_busy = self.drain(&mut rx, backend, now) > 0;
        }
        let send_s = (send_end - start) as f64 / hz as f64;
        Ok(Measured { backend_base, counts: self.counts, latency: self.latency, send_s })
    }

    fn resolve(&mut self, rx: &mut RxBurst, backend: &mut BackendSide, stop: &AtomicBool) -> Result<(), String> {
        let started = tsc();
        let mut next_ask = started;
        while self.peer.is_none() {
            let now = tsc();
            if now >= started + RESOLVE_S * self.hz {
                return Err(format!(
                    "no ARP reply for the VIP {} on the client port within {RESOLVE_S} s: is the balancer up \
                     and serving it? (or give --client-peer-mac)",
                    self.expect.vip.ip()
                ));
            }
            if stop.load(Ordering::Relaxed) {
                return Err("interrupted while resolving the VIP".into());
            }
            if now >= next_ask {
                self.ask_for_vip();
                next_ask = now + self.hz / ASKS_PER_S;
            }
            self.receive(rx, now);
            backend.poll();
        }
        if self.learn_peer {
            eprintln!("sluice-gen: the VIP {} is at {}", self.expect.vip.ip(), self.peer.unwrap_or_default());
        }
        Ok(())
    }

    /// Sends one request (or SYN) every 10 ms until a reply has come back through the whole
    /// path (in tcp mode: a whole connection), then lets frames still in flight return for up
    /// to 10 ms. Frames lost while links came up or neighbour tables filled are not counted:
    /// the client counters start from zero afterwards.
    fn warm_up(&mut self, rx: &mut RxBurst, backend: &mut BackendSide, stop: &AtomicBool) -> Result<(), String> {
        let started = tsc();
        let mut pacer = Pacer::new(Rate::PerSecond(WARM_UP_PER_S), self.hz, started);
        let tcp = self.mode == Mode::Tcp;
        let proven = move |c: &ClientCounts| if tcp { c.connections_completed > 0 } else { c.received > 0 };
        while !proven(&self.counts) {
            let now = tsc();
            if now >= started + WARM_UP_S * self.hz {
                let c = &self.counts;
                let bad = bad_summary(c);
                return Err(format!(
                    "no round trip within {WARM_UP_S} s: {} sent, {} good, bad: [{bad}]",
                    c.sent, c.received
                ));
            }
            if stop.load(Ordering::Relaxed) {
                return Err("interrupted during the warm-up".into());
            }
            self.send(&mut pacer, now);
            self.receive(rx, now);
            backend.poll();
        }
        let settled = tsc() + self.hz / 100;
        loop {
            let now = tsc();
            if now >= settled || self.all_answered() {
                break;
            }
            self.drain(rx, backend, now);
        }
        let ms = (tsc() - started) as f64 * 1e3 / self.hz as f64;
        eprintln!("sluice-gen: path ready after {ms:.0} ms ({} warm-up frames)", self.counts.sent);
        self.counts = ClientCounts::default();
        self.latency = Histogram::default();
        Ok(())
    }

    fn ask_for_vip(&mut self) {
        let Some(mut m) = Mbuf::alloc(self.pool) else {
            self.counts.no_mbuf += 1;
            return;
        };
        let Some(buf) = m.append(arp::FRAME_LEN as u16) else { return };
        arp::request(buf, self.mac, self.expect.space.address(0), *self.expect.vip.ip());
        self.tx.push(m);
        self.counts.tx_refused += u64::from(self.tx.flush());
    }

    fn all_answered(&self) -> bool {
        let c = &self.counts;
        match self.mode {
            Mode::Tcp => c.connections_completed >= c.connections_opened,
            _ => c.received + c.bad_total() >= c.sent,
        }
    }

    /// Sends the requests (or SYNs) due now; returns how many the port accepted.
    fn send(&mut self, pacer: &mut Pacer, now: u64) -> usize {
        let due = pacer.due(now, BURST);
        let mut pushed = 0;
        for _ in 0..due {
            let Some(mut m) = Mbuf::alloc(self.pool) else {
                self.counts.no_mbuf += 1;
                break;
            };
            let (ip, port) = self.expect.space.tuple(self.next_flow);
            self.next_flow += 1;
            if self.next_flow == self.expect.flows {
                self.next_flow = 0;
                if self.mode.fresh_tuples() && !self.wrapped {
                    self.wrapped = true;
                    eprintln!(
                        "sluice-gen: warning: all client tuples used; from now on they repeat (raise --client-ips)"
                    );
                }
            }
            let written = if self.mode.is_tcp() {
                let peer = self.peer.unwrap_or(MacAddr::BROADCAST);
                m.append(tcp::FRAME_ROOM as u16)
                    .map(|buf| tcp::syn(buf, self.mac, peer, ip, port, self.expect.vip, now))
                    .is_some_and(|len| m.set_len(len as u16))
            } else {
                let stamp = Stamp { tsc: now, seq: self.seq };
                m.append(self.request.len() as u16).map(|buf| self.request.write(buf, ip, port, stamp)).is_some()
            };
            if !written {
                break;
            }
            self.seq += 1;
            let refused = self.tx.push(m) as usize;
            pushed += 1;
            self.count_refused(refused);
        }
        pacer.issued(pushed);
        let refused = self.tx.flush() as usize;
        let accepted = pushed.saturating_sub(refused);
        self.count_refused(refused);
        self.counts.sent += accepted as u64;
        if self.mode == Mode::Tcp {
            self.counts.connections_opened += accepted as u64;
        }
        accepted
    }

    fn count_refused(&mut self, refused: usize) {
        self.counts.tx_refused += refused as u64;
    }

    /// Receives on both sides while bursts come full, up to `DRAIN_BURSTS` each; returns how
    /// many frames arrived.
    fn drain(&mut self, rx: &mut RxBurst, backend: &mut BackendSide, now: u64) -> usize {
        let mut total = 0;
        for _ in 0..DRAIN_BURSTS {
            let (client, backend) = (self.receive(rx, now), backend.poll());
            total += client + backend;
            if client < BURST && backend < BURST {
                break;
            }
        }
        total
    }
}
