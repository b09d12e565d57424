//! What `sluicectl` prints: each reply document as aligned tables for people, or as one JSON
//! document for scripts. Pure functions of the reply, so the binary stays thin.

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::protocol::Request;
use super::reply::{BackendStatus, BgpStatus, ClusterStatus, ReloadReport, ServiceStatus, SessionRow, Status};
use super::table::{Align, Table};

/// The text to print for the reply `data` to `request`: a table, or with `json` the document
/// itself, pretty-printed. Each ends with a newline. `Err` if the reply is not the document
/// the command answers with (a daemon of another version).
pub fn render(request: &Request, data: &Value, json: bool) -> Result<String, String> {
    if json {
        let mut text = serde_json::to_string_pretty(data).map_err(|e| e.to_string())?;
        text.push('\n');
        return Ok(text);
    }
    Ok(match request {
        Request::Status => status(&document(data)?),
        Request::Services => services(&document::<Vec<ServiceStatus>>(data)?),
        Request::Backend { service, .. } => match data {
            Value::Null => "done\n".to_owned(),
            _ => backend(service, &document(data)?),
        },
        Request::Sessions { .. } => sessions(&document::<Vec<SessionRow>>(data)?),
        Request::Reload => reload(&document(data)?),
        Request::DrainNode | Request::UndrainNode => bgp(&document(data)?),
    })
}

fn document<T: DeserializeOwned>(data: &Value) -> Result<T, String> {
    T::deserialize(data).map_err(|e| format!("unexpected reply from the daemon: {e}"))
}

/// `sluicectl status`: a summary line, then the workers, then the ports.
pub fn status(status: &Status) -> String {
    let mut out =
        format!("sluice {}, up {}, {} sessions\n", status.version, duration(status.uptime_seconds), status.sessions);
    let mut workers = Table::new(&[("WORKER", Align::Right), ("CPU", Align::Right), ("BUSY", Align::Right)]);
    for w in &status.workers {
        workers.row(vec![w.id.to_string(), w.cpu.to_string(), format!("{:.1}%", w.busy_ratio * 100.0)]);
    }
    let mut ports = Table::new(&[
        ("PORT", Align::Left),
        ("DEVICE", Align::Left),
        ("DRIVER", Align::Left),
        ("STEERING", Align::Left),
        ("RX_PPS", Align::Right),
        ("TX_PPS", Align::Right),
        ("RX_PACKETS", Align::Right),
        ("TX_PACKETS", Align::Right),
        ("DROPPED", Align::Right),
    ]);
    for p in &status.ports {
        ports.row(vec![
            p.name.clone(),
            p.device.clone(),
            p.driver.clone(),
            p.steering.clone(),
            format!("{:.0}", p.rx_pps),
            format!("{:.0}", p.tx_pps),
            p.rx_packets.to_string(),
            p.tx_packets.to_string(),
            p.dropped.to_string(),
        ]);
    }
    out.push('\n');
    out.push_str(&workers.render());
    out.push('\n');
    out.push_str(&ports.render());
    if let Some(b) = &status.bgp {
        out.push('\n');
        out.push_str(&bgp(b));
    }
    if let Some(c) = &status.cluster {
        out.push('\n');
        out.push_str(&cluster(c));
    }
    out
}

/// The `[cluster]` part of `sluicectl status`: this node, then one row per peer.
pub fn cluster(c: &ClusterStatus) -> String {
    let mut out = format!(
        "cluster: node {}, epoch {}, {}\n",
        c.node,
        c.epoch,
        if c.ready { "in sync" } else { "waiting for peers' sessions" }
    );
    let mut peers = Table::new(&[
        ("PEER", Align::Left),
        ("NODE", Align::Right),
        ("UP", Align::Left),
        ("HELD", Align::Right),
        ("MSGS_IN", Align::Right),
        ("MSGS_OUT", Align::Right),
        ("RESENT", Align::Right),
        ("DROPPED", Align::Left),
    ]);
    for p in &c.peers {
        let dropped: Vec<String> = p.dropped.iter().map(|(r, n)| format!("{r} {n}")).collect();
        peers.row(vec![
            p.address.clone(),
            p.node.map_or("-".to_owned(), |n| n.to_string()),
            (if p.up { "yes" } else { "no" }).to_owned(),
            p.sessions_held.to_string(),
            p.messages_in.to_string(),
            p.messages_out.to_string(),
            p.resends.to_string(),
            if dropped.is_empty() { "-".to_owned() } else { dropped.join(", ") },
        ]);
    }
    out.push('\n');
    out.push_str(&peers.render());
    out
}

/// The `[bgp]` part of `sluicectl status`, and what `drain-node` and `undrain-node` print: a
/// summary line, the neighbours, the routes.
pub fn bgp(bgp: &BgpStatus) -> String {
    let mut out = format!(
        "bgp: as {}, router id {}, bird {} ({} restarts){}\n",
        bgp.local_as,
        bgp.router_id,
        bgp.bird,
        bgp.bird_restarts,
        if bgp.drained { ", node drained" } else { "" }
    );
    let mut neighbors = Table::new(&[
        ("NEIGHBOR", Align::Left),
        ("AS", Align::Right),
        ("UP", Align::Left),
        ("STATE", Align::Left),
        ("INFO", Align::Left),
    ]);
    for n in &bgp.neighbors {
        let up = if n.up { "yes" } else { "no" };
        neighbors.row(vec![n.address.clone(), n.remote_as.to_string(), up.into(), n.state.clone(), n.info.clone()]);
    }
    let mut routes = Table::new(&[("PREFIX", Align::Left), ("KIND", Align::Left), ("ANNOUNCED", Align::Left)]);
    for r in &bgp.routes {
        let announced = match (&r.withdrawn, r.announced) {
            (_, true) => "yes".to_owned(),
            (Some(why), false) => format!("no ({why})"),
            (None, false) => "no".to_owned(),
        };
        routes.row(vec![r.prefix.clone(), r.kind.clone(), announced]);
    }
    out.push('\n');
    out.push_str(&neighbors.render());
    out.push('\n');
    out.push_str(&routes.render());
    out
}

/// `sluicectl services`: laid out as `ipvsadm -Ln --stats --rate` would be if it could show
/// both at once: a line per service (the sums of its backends), a line per backend under it;
/// ACTIVECONN, CONNS, INPKTS, OUTPKTS, INBYTES, OUTBYTES as LVS counts them (IN: client to
/// backend), then the same per second over the last second (CPS, INPPS, OUTPPS, INBPS, OUTBPS).
pub fn services(services: &[ServiceStatus]) -> String {
    if services.is_empty() {
        return "no services\n".to_owned();
    }
    let mut table = traffic_table("PROT VIP SCHEDULER [FLAGS] (SERVICE)");
    table.row(vec!["  -> BACKEND".to_owned()]);
    for service in services {
        let mut sum = Traffic::default();
        service.backends.iter().for_each(|b| sum.add(&Traffic::of(b)));
        let mut cells = vec![service_line(service), String::new(), String::new()];
        cells.extend(sum.cells());
        table.row(cells);
        for b in &service.backends {
            table.row(backend_cells(b));
        }
        if service.backends.is_empty() {
            table.row(vec!["  (no backends)".to_owned()]);
        }
    }
    table.render()
}

fn service_line(service: &ServiceStatus) -> String {
    let flags = if service.per_packet { " per_packet" } else { "" };
    format!("{} {} {}{flags} ({})", service.protocol.to_uppercase(), service.vip, service.scheduler, service.name)
}

/// The columns of `services` and `backend`, after the first.
fn traffic_table(first: &str) -> Table {
    let mut columns = vec![(first, Align::Left), ("WEIGHT", Align::Right), ("STATE", Align::Left)];
    columns.extend(
        [
            "ACTIVECONN",
            "CONNS",
            "INPKTS",
            "OUTPKTS",
            "INBYTES",
            "OUTBYTES",
            "CPS",
            "INPPS",
            "OUTPPS",
            "INBPS",
            "OUTBPS",
        ]
        .map(|h| (h, Align::Right)),
    );
    Table::new(&columns)
}

/// A backend's counters and rates, or a service's sums of them.
#[derive(Default)]
struct Traffic {
    counts: [u64; 6],
    rates: [f64; 5],
}

impl Traffic {
    fn of(b: &BackendStatus) -> Traffic {
        let r = &b.rates;
        Traffic {
            counts: [
                b.active_sessions,
                b.connections,
                b.packets_to_backend,
                b.packets_from_backend,
                b.bytes_to_backend,
                b.bytes_from_backend,
            ],
            rates: [
                r.connections,
                r.packets_to_backend,
                r.packets_from_backend,
                r.bytes_to_backend,
                r.bytes_from_backend,
            ],
        }
    }

    fn add(&mut self, other: &Traffic) {
        self.counts.iter_mut().zip(other.counts).for_each(|(a, b)| *a += b);
        self.rates.iter_mut().zip(other.rates).for_each(|(a, b)| *a += b);
    }

    fn cells(&self) -> Vec<String> {
        let counts = self.counts.iter().map(u64::to_string);
        counts.chain(self.rates.iter().map(|r| format!("{r:.0}"))).collect()
    }
}

fn backend_cells(b: &BackendStatus) -> Vec<String> {
    let mut cells = vec![format!("  -> {}", b.address), b.weight.to_string(), b.state.clone()];
    cells.extend(Traffic::of(b).cells());
    cells
}

/// `sluicectl backend ...`: the backend as it is after the change.
pub fn backend(service: &str, backend: &BackendStatus) -> String {
    let mut table = traffic_table("BACKEND");
    let mut cells = backend_cells(backend);
    cells[0] = backend.address.clone();
    table.row(cells);
    format!("service {service}:\n{}", table.render())
}

/// `sluicectl sessions`: one row per session.
pub fn sessions(rows: &[SessionRow]) -> String {
    if rows.is_empty() {
        return "no sessions\n".to_owned();
    }
    let mut table = Table::new(&[
        ("SERVICE", Align::Left),
        ("CLIENT", Align::Left),
        ("VIP", Align::Left),
        ("LOCAL", Align::Left),
        ("BACKEND", Align::Left),
        ("STATE", Align::Left),
        ("AGE", Align::Right),
    ]);
    for s in rows {
        table.row(vec![
            s.service.clone(),
            s.client.clone(),
            s.vip.clone(),
            s.local.clone(),
            s.backend.clone(),
            s.state.clone(),
            duration(s.age_seconds),
        ]);
    }
    table.render()
}

/// `sluicectl reload`: what changed, or why nothing did.
pub fn reload(report: &ReloadReport) -> String {
    let mut out = if report.changed { "reloaded, changes:\n".to_owned() } else { "nothing changed\n".to_owned() };
    for change in &report.changes {
        out.push_str(&format!("  {change}\n"));
    }
    out
}

/// A duration in seconds as people read it: "42s", "3m05s", "2h03m05s", "4d02h03m".
pub fn duration(seconds: u64) -> String {
    let (d, h, m, s) = (seconds / 86_400, seconds / 3600 % 24, seconds / 60 % 60, seconds % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m{s:02}s"),
        (0, _, _) => format!("{h}h{m:02}m{s:02}s"),
        _ => format!("{d}d{h:02}h{m:02}m"),
    }
}
