//! A `Sample` as Prometheus text exposition (format 0.0.4).
//!
//! The families are built directly as `prometheus::proto` messages from the sample's absolute
//! values and encoded by `prometheus::TextEncoder`, which writes the HELP and TYPE lines and
//! escapes label values. No registry and no metric objects: the appliance's counters live in
//! the workers, and a scrape only reads their sums.

use prometheus::proto::{Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType};
use prometheus::TextEncoder;

use super::sample::{Sample, WorkerHistogram};

/// `labels!(service = s.name, worker = w.id)`: the label pairs of one row, in that order.
macro_rules! labels {
    ($($name:ident = $value:expr),+ $(,)?) => {
        vec![$(label(stringify!($name), $value.to_string())),+]
    };
}

/// The `Content-Type` of what `render` returns.
pub const CONTENT_TYPE: &str = prometheus::TEXT_FORMAT;

/// The text exposition of `sample`, families in a fixed order, rows in the sample's order.
pub fn render(sample: &Sample) -> String {
    let s = sample;
    let families: Vec<MetricFamily> = [
        counter(
            "sluice_port_packets_total",
            "Packets received (rx) and sent (tx) by each port.",
            s.port_packets.iter().map(|r| (labels!(interface = r.interface, direction = r.direction.label()), r.value)),
        ),
        counter(
            "sluice_port_bytes_total",
            "Bytes received (rx) and sent (tx) by each port.",
            s.port_bytes.iter().map(|r| (labels!(interface = r.interface, direction = r.direction.label()), r.value)),
        ),
        counter(
            "sluice_port_dropped_total",
            "Packets each port dropped or failed to send, by reason.",
            s.port_dropped.iter().map(|r| (labels!(interface = r.interface, reason = r.reason), r.value)),
        ),
        gauge(
            "sluice_port_steering",
            "How replies reach the worker owning their local IP: 1 for the mode in use.",
            s.port_steering.iter().map(|r| (labels!(interface = r.interface, mode = r.mode), 1.0)),
        ),
        counter(
            "sluice_packets_dropped_total",
            "Packets the data path dropped, by worker and reason.",
            s.packets_dropped.iter().map(|r| (labels!(worker = r.worker, reason = r.reason), r.value)),
        ),
        counter(
            "sluice_worker_redirected_total",
            "Packets a worker handed to the worker owning their local IP (out) or took from others (in).",
            s.worker_redirected.iter().map(|r| (labels!(worker = r.worker, direction = r.direction), r.value)),
        ),
        gauge(
            "sluice_worker_busy_ratio",
            "Share of each worker's poll cycles that found work.",
            s.worker_busy.iter().map(|r| (labels!(worker = r.worker), r.ratio)),
        ),
        gauge(
            "sluice_worker_cycles_per_packet",
            "TSC cycles a worker spent per packet received over the last second, in Sluice's own work (own) and in the drivers' receive and transmit calls (driver).",
            s.worker_cycles.iter().map(|r| (labels!(worker = r.worker, part = r.part), r.cycles)),
        ),
        gauge(
            "sluice_sessions",
            "Sessions in each worker's table, by service.",
            s.sessions.iter().map(|r| (labels!(service = r.service, worker = r.worker), r.value as f64)),
        ),
        counter(
            "sluice_sessions_created_total",
            "Sessions created, by service.",
            s.sessions_created.iter().map(|r| (labels!(service = r.service), r.value)),
        ),
        counter(
            "sluice_client_address_total",
            "What became of the client's address on the way to a backend (client_address), by service and result.",
            s.client_address.iter().map(|r| (labels!(service = r.service, result = r.result), r.value)),
        ),
        counter(
            "sluice_synproxy_total",
            "SYN proxy cookies, by service and result: sent (SYNs answered), valid and invalid (ACKs).",
            s.synproxy.iter().map(|r| (labels!(service = r.service, result = r.result), r.value)),
        ),
        counter(
            "sluice_sessions_expired_total",
            "Sessions that ended idle, by worker.",
            s.sessions_expired.iter().map(|r| (labels!(worker = r.worker), r.value)),
        ),
        counter(
            "sluice_sessions_evicted_total",
            "Unconfirmed sessions ended to make room for a new flow (sessions.when_full = evict), by worker.",
            s.sessions_evicted.iter().map(|r| (labels!(worker = r.worker), r.value)),
        ),
        counter(
            "sluice_icmp_errors_relayed_total",
            "ICMP errors about a session passed to its other side, by worker.",
            s.icmp_relayed.iter().map(|r| (labels!(worker = r.worker), r.value)),
        ),
        gauge(
            "sluice_worker_longest_loop_seconds",
            "The longest poll loop of each worker since start.",
            s.longest_loop.iter().map(|r| (labels!(worker = r.worker), r.seconds)),
        ),
        histogram(
            "sluice_worker_packet_wait_seconds",
            "Packets by the longest they can have been in their worker: from the poll before the one that took them to the end of the loop that sent them.",
            s.packet_wait.iter().map(|r| (labels!(worker = r.worker), r)),
        ),
        counter(
            "sluice_worker_loops_total",
            "Poll loops each worker has run, finding work or not: a loop rate that stops rising is a stalled worker.",
            s.loops.iter().map(|r| (labels!(worker = r.worker), r.value)),
        ),
        gauge(
            "sluice_neighbours",
            "Entries in each worker's ARP neighbour table (next hops it needs), pending ones included.",
            s.neighbours.iter().map(|r| (labels!(worker = r.worker), r.value as f64)),
        ),
        gauge(
            "sluice_mbufs_available",
            "Free mbufs in the packet buffer pool, per-core caches included.",
            s.mbufs_available.iter().map(|&v| (Vec::new(), v as f64)),
        ),
        gauge(
            "sluice_backend_up",
            "1 while the backend passes its health checks, 0 while it is down.",
            s.backend_up.iter().map(|r| (labels!(service = r.service, backend = r.backend), f64::from(u8::from(r.up)))),
        ),
        gauge(
            "sluice_backend_weight",
            "The weight in force for each backend.",
            s.backend_weight.iter().map(|r| (labels!(service = r.service, backend = r.backend), f64::from(r.weight))),
        ),
        counter(
            "sluice_backend_packets_total",
            "Packets forwarded to and received from each backend.",
            s.backend_packets
                .iter()
                .map(|r| (labels!(service = r.service, backend = r.backend, direction = r.direction.label()), r.value)),
        ),
        counter(
            "sluice_backend_bytes_total",
            "Bytes forwarded to and received from each backend.",
            s.backend_bytes
                .iter()
                .map(|r| (labels!(service = r.service, backend = r.backend, direction = r.direction.label()), r.value)),
        ),
        counter(
            "sluice_health_checks_total",
            "Health checks of each backend, by result.",
            s.health_checks
                .iter()
                .map(|r| (labels!(service = r.service, backend = r.backend, result = r.result.label()), r.value)),
        ),
        gauge(
            "sluice_local_ports_free",
            "Free FULLNAT source ports of each local IP.",
            s.local_ports_free.iter().map(|r| (labels!(local_ip = r.local_ip), r.value as f64)),
        ),
        gauge(
            "sluice_bgp_neighbor_up",
            "1 while the BGP session with the neighbour is established.",
            s.bgp_neighbor_up.iter().map(|r| (labels!(neighbor = r.neighbor), f64::from(u8::from(r.up)))),
        ),
        gauge(
            "sluice_route_announced",
            "1 while BIRD announces the /32 (a VIP or a local IP), 0 while it is withdrawn.",
            s.route_announced.iter().map(|r| (labels!(prefix = r.prefix), f64::from(u8::from(r.announced)))),
        ),
        counter(
            "sluice_bird_restarts_total",
            "Times BIRD exited and was started again.",
            s.bird_restarts.map(|n| (Vec::new(), n)).into_iter(),
        ),
        gauge(
            "sluice_cluster_peer_up",
            "1 while the cluster peer is heard from (within dead_after).",
            s.peers.iter().filter(|p| p.peer != "unknown").map(|p| (labels!(peer = p.peer), f64::from(u8::from(p.up)))),
        ),
        gauge(
            "sluice_sync_sessions",
            "Copies of the peer's sessions this node holds, over all workers.",
            s.peers.iter().filter(|p| p.peer != "unknown").map(|p| (labels!(peer = p.peer), p.sessions as f64)),
        ),
        counter(
            "sluice_sync_messages_total",
            "Sync messages from (in) and to (out) each peer.",
            s.peers.iter().filter(|p| p.peer != "unknown").flat_map(|p| {
                [("in", p.messages_in), ("out", p.messages_out)]
                    .map(|(d, v)| (labels!(peer = p.peer, direction = d), v))
            }),
        ),
        counter(
            "sluice_sync_records_total",
            "Session records from (in) and to (out) each peer.",
            s.peers.iter().filter(|p| p.peer != "unknown").flat_map(|p| {
                [("in", p.records_in), ("out", p.records_out)].map(|(d, v)| (labels!(peer = p.peer, direction = d), v))
            }),
        ),
        counter(
            "sluice_sync_resends_total",
            "Sync messages sent to each peer again for want of an acknowledgement.",
            s.peers.iter().filter(|p| p.peer != "unknown").map(|p| (labels!(peer = p.peer), p.resends)),
        ),
        counter(
            "sluice_sync_dropped_total",
            "Sync messages or records refused or lost, by peer and reason.",
            s.peers.iter().flat_map(|p| p.dropped.iter().map(|(r, v)| (labels!(peer = p.peer, reason = r), *v))),
        ),
        gauge(
            "sluice_build_info",
            "The running version, as a label; the value is always 1.",
            [(labels!(version = s.version), 1.0)].into_iter(),
        ),
    ]
    .into_iter()
    .flatten()
    .collect();
    // The encoder fails only on a family without metrics or without a name, and none is built.
    TextEncoder::new().encode_to_string(&families).unwrap_or_else(|e| format!("# encoding failed: {e}\n"))
}

fn label(name: &str, value: String) -> LabelPair {
    let mut pair = LabelPair::default();
    pair.set_name(name.to_owned());
    pair.set_value(value);
    pair
}

fn counter(name: &str, help: &str, rows: impl Iterator<Item = (Vec<LabelPair>, u64)>) -> Option<MetricFamily> {
    family(
        name,
        help,
        MetricType::COUNTER,
        rows.map(|(labels, value)| {
            let mut counter = Counter::default();
            counter.set_value(value as f64);
            let mut metric = Metric::default();
            metric.set_label(labels);
            metric.set_counter(counter);
            metric
        }),
    )
}

fn gauge(name: &str, help: &str, rows: impl Iterator<Item = (Vec<LabelPair>, f64)>) -> Option<MetricFamily> {
    family(
        name,
        help,
        MetricType::GAUGE,
        rows.map(|(labels, value)| {
            let mut gauge = Gauge::default();
            gauge.set_value(value);
            let mut metric = Metric::default();
            metric.set_label(labels);
            metric.set_gauge(gauge);
            metric
        }),
    )
}

fn histogram<'a>(
    name: &str,
    help: &str,
    rows: impl Iterator<Item = (Vec<LabelPair>, &'a WorkerHistogram)>,
) -> Option<MetricFamily> {
    family(
        name,
        help,
        MetricType::HISTOGRAM,
        rows.map(|(labels, h)| {
            let buckets = h.buckets.iter().map(|&(upper, count)| {
                let mut bucket = Bucket::default();
                bucket.set_upper_bound(upper);
                bucket.set_cumulative_count(count);
                bucket
            });
            let mut histogram = Histogram::default();
            histogram.set_bucket(buckets.collect());
            histogram.set_sample_count(h.count);
            histogram.set_sample_sum(h.sum_seconds);
            let mut metric = Metric::default();
            metric.set_label(labels);
            metric.set_histogram(histogram);
            metric
        }),
    )
}

/// The family, or `None` when it has no rows: the text format has no way to say "no series"
/// but leaving the family out.
fn family(name: &str, help: &str, kind: MetricType, metrics: impl Iterator<Item = Metric>) -> Option<MetricFamily> {
    let metrics: Vec<Metric> = metrics.collect();
    if metrics.is_empty() {
        return None;
    }
    let mut family = MetricFamily::default();
    family.set_name(name.to_owned());
    family.set_help(help.to_owned());
    family.set_field_type(kind);
    family.set_metric(metrics);
    Some(family)
}
