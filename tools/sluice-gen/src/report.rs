//! Counters of both sides, the once-a-second progress line (stderr) and the final JSON object
//! (stdout).
//!
//! The client side's counters belong to the main lcore, which also reports. The backend side's
//! are plain integers on its own lcore, published after every busy poll into `SharedBackend`
//! (relaxed stores: one writer) for the main lcore to read.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{json, Value};

use super::cli::{Mode, Options};
use super::histogram::Histogram;
use super::reply::BadReason;

#[derive(Debug, Clone, Copy, Default)]
pub struct ClientCounts {
    /// Frames the port accepted: requests (UDP) or all client segments (TCP).
    pub sent: u64,
    pub tx_refused: u64,
    pub no_mbuf: u64,
    /// Good replies (UDP) or good segments (TCP); in ceiling mode every frame returned.
    pub received: u64,
    pub bad: [u64; BadReason::ALL.len()],
    /// Replies whose sequence number is below the highest seen.
    pub reordered: u64,
    pub arp_answered: u64,
    pub arp_seen: u64,
    /// Neither ARP nor IPv4 (ignored).
    pub not_ip: u64,
    pub connections_opened: u64,
    pub connections_completed: u64,
    pub connections_closed: u64,
    pub busy_cycles: u64,
}

impl ClientCounts {
    #[inline]
    pub fn count_bad(&mut self, reason: BadReason) {
        self.bad[reason as usize] += 1;
    }

    pub fn bad_total(&self) -> u64 {
        self.bad.iter().sum()
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackendCounts {
    pub received: u64,
    /// UDP datagrams sent back.
    pub reflected: u64,
    /// TCP segments answered (SYN-ACK, response, ACK of FIN).
    pub tcp_answered: u64,
    pub arp_answered: u64,
    /// Frames with a wrong IPv4 or L4 checksum: the balancer's rewrite broke them.
    pub bad_checksum: u64,
    /// Everything else not answered (ARP not asking, non-IP, unexpected TCP...).
    pub ignored: u64,
    pub tx_refused: u64,
    pub busy_cycles: u64,
}

const BACKEND_FIELDS: usize = 8;

impl BackendCounts {
    fn to_array(self) -> [u64; BACKEND_FIELDS] {
        [
            self.received,
            self.reflected,
            self.tcp_answered,
            self.arp_answered,
            self.bad_checksum,
            self.ignored,
            self.tx_refused,
            self.busy_cycles,
        ]
    }

    fn from_array(a: [u64; BACKEND_FIELDS]) -> BackendCounts {
        let [received, reflected, tcp_answered, arp_answered, bad_checksum, ignored, tx_refused, busy_cycles] = a;
        BackendCounts {
            received,
            reflected,
            tcp_answered,
            arp_answered,
            bad_checksum,
            ignored,
            tx_refused,
            busy_cycles,
        }
    }

    /// What was counted since `base` was read (the warm-up is left out this way).
    pub fn since(self, base: BackendCounts) -> BackendCounts {
        let (now, base) = (self.to_array(), base.to_array());
        BackendCounts::from_array(std::array::from_fn(|i| now[i].saturating_sub(base[i])))
    }
}

/// The backend lcore's counters as the main lcore reads them.
#[derive(Default)]
pub struct SharedBackend {
    cells: [AtomicU64; BACKEND_FIELDS],
}

impl SharedBackend {
    pub fn publish(&self, counts: &BackendCounts) {
        for (cell, v) in self.cells.iter().zip(counts.to_array()) {
            cell.store(v, Ordering::Relaxed);
        }
    }

    pub fn read(&self) -> BackendCounts {
        BackendCounts::from_array(std::array::from_fn(|i| self.cells[i].load(Ordering::Relaxed)))
    }
}

/// One progress line: totals so far and the rates over the last interval.
pub fn progress(
    elapsed_s: f64,
    interval_s: f64,
    c: &ClientCounts,
    b: &BackendCounts,
    last: &(ClientCounts, BackendCounts),
) -> String {
    let rate = |now: u64, before: u64| (now - before) as f64 / interval_s.max(1e-9);
    let mut line = format!(
        "sluice-gen: t={elapsed_s:.1}s sent={} received={} bad={} reflected={} tx_pps={:.0} rx_pps={:.0} reflect_pps={:.0}",
        c.sent,
        c.received,
        c.bad_total(),
        b.reflected + b.tcp_answered,
        rate(c.sent, last.0.sent),
        rate(c.received, last.0.received),
        rate(b.reflected + b.tcp_answered, last.1.reflected + last.1.tcp_answered),
    );
    if c.connections_opened > 0 {
        line.push_str(&format!(" conn_per_s={:.0}", rate(c.connections_completed, last.0.connections_completed)));
    }
    line
}

/// The bad frames by reason, e.g. "3 wrong_source, 1 bad_checksum" (for error messages).
pub fn bad_summary(c: &ClientCounts) -> String {
    let parts: Vec<String> = BadReason::ALL
        .iter()
        .filter(|r| c.bad[**r as usize] > 0)
        .map(|r| format!("{} {}", c.bad[*r as usize], r.name()))
        .collect();
    parts.join(", ")
}

/// Everything the final report is made of.
pub struct Outcome<'a> {
    pub options: &'a Options,
    /// Seconds from the first packet sent to the end of sending.
    pub send_s: f64,
    pub client: ClientCounts,
    pub backend: BackendCounts,
    pub latency: &'a Histogram,
}

fn per_s(count: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        (count as f64 / seconds).round()
    } else {
        0.0
    }
}

/// The JSON object printed at the end (its fields are listed in `gen/mod.rs`).
pub fn json(o: &Outcome) -> Value {
    let (c, b, mode) = (&o.client, &o.backend, o.options.mode);
    let lost = if mode == Mode::Tcp {
        c.connections_opened.saturating_sub(c.connections_completed)
    } else {
        c.sent.saturating_sub(c.received)
    };
    let cycles_per_packet = if c.sent > 0 {
        json!(((c.busy_cycles + b.busy_cycles) as f64 / c.sent as f64 * 10.0).round() / 10.0)
    } else {
        Value::Null
    };
    let bad_reasons: serde_json::Map<String, Value> =
        BadReason::ALL.iter().map(|r| (r.name().to_owned(), json!(c.bad[*r as usize]))).collect();
    json!({
        "mode": mode.name(),
        "duration_s": (o.send_s * 1000.0).round() / 1000.0,
        "sent": c.sent,
        "received": c.received,
        "bad": c.bad_total(),
        "reflected": b.reflected + b.tcp_answered,
        "lost": lost,
        "tx_pps": per_s(c.sent, o.send_s),
        "rx_pps": per_s(c.received, o.send_s),
        "latency_ns": {
            "p50": o.latency.quantile(0.50),
            "p99": o.latency.quantile(0.99),
            "max": o.latency.max(),
            "samples": o.latency.count(),
        },
        "connections_per_s": (mode == Mode::Tcp).then(|| per_s(c.connections_completed, o.send_s)),
        "sessions_per_s": (mode == Mode::NewFlows).then(|| per_s(c.received, o.send_s)),
        "syn_acks_per_s": (mode == Mode::Syn).then(|| per_s(c.received, o.send_s)),
        "cycles_per_packet_generator": cycles_per_packet,
        "bad_reasons": bad_reasons,
        "connections": (mode == Mode::Tcp).then(|| json!({
            "opened": c.connections_opened,
            "completed": c.connections_completed,
            "closed": c.connections_closed,
        })),
        "client": {
            "tx_refused": c.tx_refused,
            "no_mbuf": c.no_mbuf,
            "reordered": c.reordered,
            "arp_answered": c.arp_answered,
            "not_ip": c.not_ip,
        },
        "backend": {
            "received": b.received,
            "udp_reflected": b.reflected,
            "tcp_answered": b.tcp_answered,
            "arp_answered": b.arp_answered,
            "bad_checksum": b.bad_checksum,
            "ignored": b.ignored,
            "tx_refused": b.tx_refused,
        },
        "config": {
            "size": if mode.is_udp() { json!(o.options.size) } else { Value::Null },
            "flows": o.options.flows,
            "client_ips": o.options.space.addresses(),
            "rate": o.options.rate.to_string(),
            "cores": o.options.cores,
            "vip": o.options.vip.to_string(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{parse, Command};

    fn options(mode: &str) -> Options {
        let args: Vec<String> = ["--client-vdev", "net_null0", "--backend-vdev", "net_null1", "--mode", mode]
            .iter()
            .map(|s| s.to_string())
            .collect();
        match parse(&args) {
            Ok(Command::Run(o)) => *o,
            _ => panic!("options"),
        }
    }

    #[test]
    fn json_has_every_field_and_the_right_arithmetic() {
        let o = options("fullnat");
        let mut h = Histogram::default();
        (1..=100).for_each(|ns| h.record(ns * 1000));
        let mut client = ClientCounts { sent: 2_000, received: 1_990, busy_cycles: 300_000, ..Default::default() };
        client.count_bad(BadReason::WrongSource);
        let backend = BackendCounts { reflected: 1_995, busy_cycles: 100_000, ..Default::default() };
        let v = json(&Outcome { options: &o, send_s: 2.0, client, backend, latency: &h });
        assert_eq!(v["mode"], "fullnat");
        assert_eq!(
            (v["sent"].as_u64(), v["received"].as_u64(), v["bad"].as_u64()),
            (Some(2_000), Some(1_990), Some(1))
        );
        assert_eq!((v["reflected"].as_u64(), v["lost"].as_u64()), (Some(1_995), Some(10)));
        assert_eq!((v["tx_pps"].as_f64(), v["rx_pps"].as_f64()), (Some(1_000.0), Some(995.0)));
        assert_eq!(v["cycles_per_packet_generator"].as_f64(), Some(200.0));
        assert_eq!(v["latency_ns"]["max"].as_u64(), Some(100_000));
        assert!((50_000..=53_248).contains(&v["latency_ns"]["p50"].as_u64().unwrap()));
        assert_eq!(v["bad_reasons"]["wrong_source"].as_u64(), Some(1));
        assert!(v["connections_per_s"].is_null() && v["sessions_per_s"].is_null());
        for field in ["duration_s", "latency_ns", "backend", "client", "config"] {
            assert!(!v[field].is_null(), "{field}");
        }
    }

    #[test]
    fn mode_specific_rates() {
        let o = options("tcp");
        let h = Histogram::default();
        let client = ClientCounts {
            sent: 600,
            received: 500,
            connections_opened: 200,
            connections_completed: 150,
            ..Default::default()
        };
        let v = json(&Outcome { options: &o, send_s: 0.5, client, backend: BackendCounts::default(), latency: &h });
        assert_eq!((v["connections_per_s"].as_f64(), v["lost"].as_u64()), (Some(300.0), Some(50)));
        assert!(v["config"]["size"].is_null());
        let o = options("new-flows");
        let client = ClientCounts { sent: 100, received: 100, ..Default::default() };
        let v = json(&Outcome { options: &o, send_s: 0.5, client, backend: BackendCounts::default(), latency: &h });
        assert_eq!(v["sessions_per_s"].as_f64(), Some(200.0));
        assert_eq!(v["latency_ns"]["p50"].as_u64(), Some(0));
    }

    #[test]
    fn shared_counters_round_trip() {
        let shared = SharedBackend::default();
        let counts = BackendCounts {
            received: 1,
            reflected: 2,
            tcp_answered: 3,
            arp_answered: 4,
            bad_checksum: 5,
            ignored: 6,
            tx_refused: 7,
            busy_cycles: 8,
        };
        shared.publish(&counts);
        assert_eq!(shared.read(), counts);
        let base = BackendCounts { received: 1, busy_cycles: 3, ..Default::default() };
        let d = counts.since(base);
        assert_eq!((d.received, d.reflected, d.busy_cycles), (0, 2, 5));
    }

    #[test]
    fn progress_line_shows_rates() {
        let c = ClientCounts { sent: 3_000, received: 2_000, ..Default::default() };
        let b = BackendCounts { reflected: 2_500, ..Default::default() };
        let last = (ClientCounts { sent: 1_000, ..Default::default() }, BackendCounts::default());
        let mut bad = c;
        bad.count_bad(BadReason::WrongSource);
        bad.count_bad(BadReason::WrongSource);
        bad.count_bad(BadReason::Reset);
        assert_eq!(bad_summary(&bad), "2 wrong_source, 1 reset");
        let line = progress(2.0, 1.0, &c, &b, &last);
        assert!(
            line.contains("tx_pps=2000") && line.contains("rx_pps=2000") && line.contains("reflect_pps=2500"),
            "{line}"
        );
    }
}
