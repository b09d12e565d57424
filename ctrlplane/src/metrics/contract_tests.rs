//! The metrics' contract kept in step with the exposition: the families `render` emits for a
//! sample with every part present are exactly the `sluice_*` metrics listed in the metrics
//! section of `docs/interface.md`, each with the label names written there.
//!
//! The sample names every field of `Sample` and `PeerSample` (no `..Default::default()`), so a
//! new family's field does not compile until it is filled here; and every family name in
//! `render.rs` must come out of it, so a family shown only under a condition is shown.

use std::collections::{BTreeMap, BTreeSet};

use super::*;

const INTERFACE_MD: &str = include_str!("../../../docs/interface.md");
const RENDER_RS: &str = include_str!("render.rs");

/// Metric families by name, each with its label names.
pub(super) type Families = BTreeMap<String, BTreeSet<String>>;

/// Every family present: each optional part filled, a cluster peer known by its address, a
/// service with `client_address` and `synproxy`, BGP.
pub(super) fn full_sample() -> Sample {
    let service = || "dns".to_owned();
    let backend = || "198.18.1.2:5353".to_owned();
    Sample {
        version: "0.1.0".into(),
        port_packets: vec![PortCount { interface: "wan".into(), direction: PortDirection::Rx, value: 1 }],
        port_bytes: vec![PortCount { interface: "wan".into(), direction: PortDirection::Tx, value: 64 }],
        port_dropped: vec![PortDrops { interface: "wan".into(), reason: "imissed".into(), value: 1 }],
        port_steering: vec![PortSteering { interface: "lan".into(), mode: "flow".into() }],
        packets_dropped: vec![WorkerDrops { worker: 0, reason: "no_session".into(), value: 1 }],
        worker_busy: vec![WorkerBusy { worker: 0, ratio: 0.5 }],
        worker_cycles: vec![WorkerCycles { worker: 0, part: "own", cycles: 120.5 }],
        worker_redirected: vec![WorkerRedirected { worker: 0, direction: "in", value: 1 }],
        sessions: vec![ServiceSessions { service: service(), worker: 0, value: 1 }],
        sessions_created: vec![ServiceCount { service: service(), value: 1 }],
        client_address: vec![ServiceResultCount { service: service(), result: "added", value: 1 }],
        synproxy: vec![ServiceResultCount { service: service(), result: "valid", value: 1 }],
        sessions_expired: vec![WorkerCount { worker: 0, value: 1 }],
        sessions_evicted: vec![WorkerCount { worker: 0, value: 1 }],
        icmp_relayed: vec![WorkerCount { worker: 0, value: 1 }],
        longest_loop: vec![WorkerSeconds { worker: 0, seconds: 0.001 }],
        loops: vec![WorkerCount { worker: 0, value: 1 }],
        packet_wait: vec![WorkerHistogram { worker: 0, buckets: vec![(0.000001, 1)], count: 2, sum_seconds: 0.00001 }],
        neighbours: vec![WorkerCount { worker: 0, value: 1 }],
        mbufs_available: Some(1),
        backend_up: vec![BackendUp { service: service(), backend: backend(), up: true }],
        backend_weight: vec![BackendWeight { service: service(), backend: backend(), weight: 1 }],
        backend_packets: vec![BackendCount {
            service: service(),
            backend: backend(),
            direction: BackendDirection::ToBackend,
            value: 1,
        }],
        backend_bytes: vec![BackendCount {
            service: service(),
            backend: backend(),
            direction: BackendDirection::FromBackend,
            value: 1,
        }],
        health_checks: vec![HealthChecks { service: service(), backend: backend(), result: CheckResult::Ok, value: 1 }],
        local_ports_free: vec![LocalPortsFree { local_ip: "198.18.1.100".into(), value: 1 }],
        bgp_neighbor_up: vec![NeighborUp { neighbor: "198.18.0.254".into(), up: true }],
        route_announced: vec![RouteAnnounced { prefix: "198.18.0.10/32".into(), announced: true }],
        bird_restarts: Some(0),
        // A known peer: the per-peer families leave out `unknown`.
        peers: vec![PeerSample {
            peer: "198.18.0.2".into(),
            up: true,
            sessions: 1,
            messages_in: 1,
            messages_out: 1,
            records_in: 1,
            records_out: 1,
            resends: 1,
            dropped: vec![("replay".into(), 1)],
        }],
    }
}

/// The label names of one sample line's `{a="x",b="y"}` (values may hold escaped quotes).
fn label_names(labels: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = labels;
    while let Some((name, after)) = rest.split_once("=\"") {
        names.insert(name.trim_start_matches(',').to_owned());
        let mut escaped = false;
        let end = after.char_indices().find(|&(_, c)| {
            let closing = c == '"' && !escaped;
            escaped = c == '\\' && !escaped;
            closing
        });
        let Some((end, _)) = end else { panic!("unterminated label value in {{{labels}}}") };
        rest = &after[end + 1..];
    }
    names
}

/// The families of an exposition: names from the `# TYPE` lines, label names from the
/// samples.
pub(super) fn exposed(text: &str) -> Families {
    let mut families = Families::new();
    for line in text.lines() {
        if let Some(family) = line.strip_prefix("# TYPE ") {
            let name = family.split(' ').next().unwrap_or(family);
            families.entry(name.to_owned()).or_default();
        } else if !line.starts_with('#') && !line.is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            let name = &line[..end];
            let labels = line[end..].strip_prefix('{').and_then(|l| l.rsplit_once('}')).map_or("", |(l, _)| l);
            let mut labels = label_names(labels);
            // A histogram's samples are its family's name with a suffix; a bucket's `le` is
            // the format's, not a label the contract lists.
            let histogram = ["_bucket", "_sum", "_count"]
                .iter()
                .filter_map(|suffix| name.strip_suffix(suffix))
                .find(|family| families.contains_key(*family) && !families.contains_key(name));
            if let Some(family) = histogram {
                labels.remove("le");
                families.get_mut(family).expect("found above").extend(labels);
                continue;
            }
            let family = families.get_mut(name);
            let family = family.unwrap_or_else(|| panic!("`{name}` has samples but no # TYPE line"));
            family.extend(labels);
        }
    }
    families
}

/// The metric names `text` writes in backquotes, each with its labels when it lists them
/// (`sluice_sessions{service,worker}`), in order.
fn documented(text: &str) -> Vec<(String, Option<BTreeSet<String>>)> {
    let mut metrics = Vec::new();
    for quoted in text.split('`').skip(1).step_by(2) {
        let Some(tail) = quoted.strip_prefix("sluice_") else { continue };
        let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
        let name = format!("sluice_{}", &tail[..end]);
        let labels = tail[end..]
            .strip_prefix('{')
            .and_then(|l| l.split_once('}'))
            .map(|(l, _)| l.split(',').map(|name| name.trim().to_owned()).filter(|n| !n.is_empty()).collect());
        metrics.push((name, labels));
    }
    metrics
}

/// docs/interface.md's metrics section: from its heading to the next one of its level.
fn metrics_section() -> &'static str {
    let start = INTERFACE_MD.find("\n## Metrics").expect("docs/interface.md has a `## Metrics` section") + 1;
    let section = &INTERFACE_MD[start..];
    let end = section[1..].find("\n## ").map_or(section.len(), |end| end + 2);
    &section[..end]
}

fn show(labels: &BTreeSet<String>) -> String {
    labels.iter().cloned().collect::<Vec<_>>().join(",")
}

#[test]
fn the_full_sample_exposes_every_family_render_can_emit() {
    let exposed = exposed(&render(&full_sample()));
    let written: BTreeSet<&str> = RENDER_RS
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|s| s.starts_with("sluice_") && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .collect();
    assert!(written.len() > 30, "render.rs names {} families: {written:?}", written.len());
    for name in written {
        assert!(exposed.contains_key(name), "render.rs names `{name}` but the full sample does not expose it");
    }
}

#[test]
fn interface_md_lists_every_exposed_metric_with_its_labels_and_no_other() {
    let exposed = exposed(&render(&full_sample()));
    let listed = documented(metrics_section());
    let mut problems = Vec::new();

    let listed_names: BTreeSet<&str> = listed.iter().map(|(name, _)| name.as_str()).collect();
    for (name, labels) in &exposed {
        if !listed_names.contains(name.as_str()) {
            problems
                .push(format!("docs/interface.md, metrics: `{name}{{{}}}` is exposed but not listed", show(labels)));
        }
    }
    for (name, labels) in &listed {
        let Some(exposed_labels) = exposed.get(name) else {
            problems.push(format!("docs/interface.md, metrics: `{name}` is listed but never exposed"));
            continue;
        };
        // The list gives every metric's labels, `{a,b}`, or none when it has none.
        let listed_labels = labels.clone().unwrap_or_default();
        if &listed_labels != exposed_labels {
            problems.push(format!(
                "docs/interface.md, metrics: `{name}` is listed with labels {{{}}} but exposed with {{{}}}",
                show(&listed_labels),
                show(exposed_labels)
            ));
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// The metrics named elsewhere in the document (client address, defence) are the exposed
/// ones, with their labels when they are given.
#[test]
fn interface_md_names_only_exposed_metrics_everywhere() {
    let exposed = exposed(&render(&full_sample()));
    let mut problems = Vec::new();
    for (name, labels) in documented(INTERFACE_MD) {
        match (exposed.get(&name), labels) {
            (None, _) => problems.push(format!("docs/interface.md: `{name}` is named but never exposed")),
            (Some(exposed_labels), Some(labels)) if &labels != exposed_labels => problems.push(format!(
                "docs/interface.md: `{name}` is named with labels {{{}}} but exposed with {{{}}}",
                show(&labels),
                show(exposed_labels)
            )),
            _ => {}
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn the_label_parser_reads_escaped_values() {
    assert_eq!(label_names(r#"a="x\"y,z=\"w",b="\\""#), BTreeSet::from(["a".to_owned(), "b".to_owned()]));
    let exposed = exposed("# TYPE m gauge\nm{a=\"1\"} 1\nm{b=\"2\"} 2\n# TYPE n counter\nn 3\n");
    assert_eq!(exposed["m"], BTreeSet::from(["a".to_owned(), "b".to_owned()]));
    assert!(exposed["n"].is_empty());
}
