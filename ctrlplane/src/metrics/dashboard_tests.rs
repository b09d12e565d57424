//! The Grafana dashboard, `conf/grafana-dashboard.json`, queries only what the exposition has:
//! every `sluice_*` name in the PromQL of a panel, a template variable or an annotation is a
//! family `render` emits for the full sample of `contract_tests`, and every label a query names
//! for a Sluice metric (in a matcher, `by`/`without`, `on`/`ignoring`, `group_left`/`group_right`,
//! `label_replace`, `label_values`) is one of that family's labels or one Prometheus adds when
//! it scrapes (`instance`, `job`). It is also an importable dashboard: a title, a uid, a schema
//! version, every panel with a query, every query on the dashboard's Prometheus data source
//! variable, and no Grafana variable used that it does not define.
//!
//! Labels are followed through the query by a small PromQL reader: an aggregation's output has
//! only its `by` labels, so `sum by (instance) (rate(...))` then grouped `by (interface)` is
//! caught, as is a label of another family.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::contract_tests::{exposed, full_sample, Families};
use super::render;

mod promql;

use promql::{query_problems, sluice_names};

const DASHBOARD: &str = include_str!("../../../conf/grafana-dashboard.json");

/// Labels Prometheus gives every series it scrapes.
const TARGET_LABELS: [&str; 2] = ["instance", "job"];

/// The names a query may read, each with the labels it may be filtered and grouped by: the
/// exposed families with the scrape's labels; a histogram only through its `_bucket` (with
/// `le`), `_sum` and `_count` series, a summary through itself (with `quantile`), `_sum` and
/// `_count`.
fn queryable(families: &Families, types: &BTreeMap<String, String>) -> Families {
    let mut names = Families::new();
    for (name, labels) in families {
        let mut labels = labels.clone();
        labels.extend(TARGET_LABELS.map(str::to_owned));
        let with = |extra: &str| {
            let mut labels = labels.clone();
            labels.insert(extra.to_owned());
            labels
        };
        match types.get(name).map(String::as_str) {
            Some("histogram") => {
                names.insert(format!("{name}_bucket"), with("le"));
            }
            Some("summary") => {
                names.insert(name.clone(), with("quantile"));
            }
            _ => {
                names.insert(name.clone(), labels);
                continue;
            }
        }
        names.insert(format!("{name}_sum"), labels.clone());
        names.insert(format!("{name}_count"), labels);
    }
    names
}

/// Family types from an exposition's `# TYPE` lines.
fn types(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| line.strip_prefix("# TYPE ")?.split_once(' '))
        .map(|(name, kind)| (name.to_owned(), kind.trim().to_owned()))
        .collect()
}

/// What the dashboard may query: the full sample's exposition.
fn sluice_families() -> Families {
    let text = render(&full_sample());
    queryable(&exposed(&text), &types(&text))
}

// ---------------------------------------------------------------------------------------------
// PromQL, read as far as labels go.

/// Every PromQL query of the dashboard, each with where it is: panel targets (rows' nested
/// panels included), template variables, annotations.
fn queries(dashboard: &Value, problems: &mut Vec<String>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut ids = BTreeSet::new();
    let datasource_variable = dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["type"] == "datasource" && v["query"] == "prometheus")
        .and_then(|v| v["name"].as_str());
    let Some(datasource_variable) = datasource_variable else {
        problems.push("no template variable of type `datasource` for Prometheus".into());
        return out;
    };
    let datasource = format!("${{{datasource_variable}}}");
    let on_variable = |value: &Value| value.get("datasource").is_none_or(|ds| ds["uid"] == datasource.as_str());

    let mut panels: Vec<(String, &Value)> = Vec::new();
    let mut row = String::from("(top)");
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        if panel["type"] == "row" {
            row = panel["title"].as_str().unwrap_or("?").to_owned();
            for nested in panel["panels"].as_array().into_iter().flatten() {
                panels.push((row.clone(), nested));
            }
        } else {
            panels.push((row.clone(), panel));
        }
    }
    for (row, panel) in panels {
        let title = panel["title"].as_str().unwrap_or("");
        let place = format!("row \"{row}\", panel \"{title}\"");
        if title.is_empty() {
            problems.push(format!("{place}: no title"));
        }
        if !ids.insert(panel["id"].to_string()) {
            problems.push(format!("{place}: id {} is used twice", panel["id"]));
        }
        if !on_variable(panel) || panel.get("datasource").is_none() {
            problems.push(format!("{place}: the data source is not {datasource}"));
        }
        let targets = panel["targets"].as_array().map(Vec::as_slice).unwrap_or_default();
        if !targets.iter().any(|t| t["expr"].as_str().is_some_and(|e| !e.trim().is_empty())) {
            problems.push(format!("{place}: no target with a query"));
        }
        for target in targets {
            let refid = target["refId"].as_str().unwrap_or("?");
            if !on_variable(target) {
                problems.push(format!("{place}, target {refid}: the data source is not {datasource}"));
            }
            if let Some(expr) = target["expr"].as_str().filter(|e| !e.trim().is_empty()) {
                out.push((format!("{place}, target {refid}"), expr.to_owned()));
            }
        }
    }
    for variable in dashboard["templating"]["list"].as_array().into_iter().flatten() {
        if variable["type"] != "query" {
            continue;
        }
        let name = variable["name"].as_str().unwrap_or("?");
        let place = format!("variable \"{name}\"");
        if !on_variable(variable) {
            problems.push(format!("{place}: the data source is not {datasource}"));
        }
        let query = &variable["query"];
        let query = query.as_str().or(query["query"].as_str()).unwrap_or("");
        out.push((place, query.to_owned()));
    }
    for annotation in dashboard["annotations"]["list"].as_array().into_iter().flatten() {
        if let Some(expr) = annotation["expr"].as_str() {
            out.push((format!("annotation \"{}\"", annotation["name"].as_str().unwrap_or("?")), expr.to_owned()));
        }
    }
    out
}

/// A template variable's query as PromQL: `label_values(selector, label)` checks `label`
/// against the selector, `query_result(q)` is `q`; the others name no metric.
fn variable_problems(query: &str, families: &Families) -> Vec<String> {
    let query = query.trim();
    if let Some(args) = query.strip_prefix("label_values(").and_then(|q| q.strip_suffix(')')) {
        let Some((selector, label)) = args.rsplit_once(',') else { return Vec::new() };
        return query_problems(&format!("count by ({}) ({selector})", label.trim()), families);
    }
    if let Some(inner) = query.strip_prefix("query_result(").and_then(|q| q.strip_suffix(')')) {
        return query_problems(inner, families);
    }
    Vec::new()
}

/// Grafana variables a query uses (`$name`, `${name}`, `${name:format}`).
fn variables_used(query: &str) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    for part in query.split('$').skip(1) {
        let part = part.strip_prefix('{').unwrap_or(part);
        let end = part.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(part.len());
        // `$1` is a regular expression's group (label_replace), not a variable.
        if part.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
            used.insert(part[..end].to_owned());
        }
    }
    used
}

/// Everything wrong with `dashboard` against `families`, each problem naming where it is.
fn dashboard_problems(dashboard: &Value, families: &Families) -> Vec<String> {
    let mut problems = Vec::new();
    for key in ["title", "uid"] {
        if dashboard[key].as_str().is_none_or(str::is_empty) {
            problems.push(format!("the dashboard has no `{key}`"));
        }
    }
    if dashboard["schemaVersion"].as_u64().is_none_or(|v| v < 36) {
        problems.push(format!(
            "`schemaVersion` {} is not that of a recent Grafana (36 or later)",
            dashboard["schemaVersion"]
        ));
    }
    if dashboard["panels"].as_array().is_none_or(Vec::is_empty) {
        problems.push("the dashboard has no `panels`".into());
    }
    let defined: BTreeSet<&str> =
        dashboard["templating"]["list"].as_array().into_iter().flatten().filter_map(|v| v["name"].as_str()).collect();
    for (place, query) in queries(dashboard, &mut problems) {
        for name in sluice_names(&query) {
            if !families.contains_key(&name) {
                problems.push(format!("{place}: `{name}` is not an exposed metric"));
            }
        }
        for variable in variables_used(&query) {
            if !variable.starts_with("__") && !defined.contains(variable.as_str()) {
                problems.push(format!("{place}: variable `${variable}` is not defined"));
            }
        }
        let found = if place.starts_with("variable ") {
            variable_problems(&query, families)
        } else {
            query_problems(&query, families)
        };
        problems.extend(found.into_iter().map(|p| format!("{place}: {p}")));
    }
    problems
}

fn dashboard() -> Value {
    serde_json::from_str(DASHBOARD).expect("conf/grafana-dashboard.json is JSON")
}

#[test]
fn dashboard_queries_only_exposed_metrics() {
    let families = sluice_families();
    let problems = dashboard_problems(&dashboard(), &families);
    assert!(problems.is_empty(), "conf/grafana-dashboard.json:\n{}", problems.join("\n"));
}

/// The dashboard reads most of what Sluice exposes, so a wrong reading would not go unseen
/// for want of queries: at least 30 families and every optional part (cluster, BGP).
#[test]
fn the_dashboard_reads_the_exposition_broadly() {
    let families = sluice_families();
    let mut ignored = Vec::new();
    let read: BTreeSet<String> =
        queries(&dashboard(), &mut ignored).iter().flat_map(|(_, q)| sluice_names(q)).collect();
    assert!(read.len() >= 30, "the dashboard reads only {} families: {read:?}", read.len());
    for needed in ["sluice_cluster_peer_up", "sluice_sync_sessions", "sluice_bgp_neighbor_up", "sluice_route_announced"]
    {
        assert!(read.contains(needed), "the dashboard does not read `{needed}`");
    }
    assert!(read.iter().all(|name| families.contains_key(name)), "see dashboard_queries_only_exposed_metrics");
}

fn families_of(list: &[(&str, &[&str])]) -> Families {
    list.iter().map(|(name, labels)| (name.to_string(), labels.iter().map(|l| l.to_string()).collect())).collect()
}

/// The checks fail on a dashboard that gets a name or a label wrong, naming the panel and the
/// metric.
#[test]
fn a_wrong_name_or_label_is_reported_with_its_panel() {
    let families = queryable(
        &families_of(&[
            ("sluice_port_packets_total", &["interface", "direction"]),
            ("sluice_sessions", &["service", "worker"]),
            ("sluice_latency_seconds", &["service"]),
        ]),
        &BTreeMap::from([("sluice_latency_seconds".to_owned(), "histogram".to_owned())]),
    );
    let dashboard = serde_json::json!({
        "title": "t", "uid": "u", "schemaVersion": 39,
        "templating": {"list": [
            {"name": "ds", "type": "datasource", "query": "prometheus"},
            {"name": "svc", "type": "query", "datasource": {"uid": "${ds}"},
             "query": {"query": "label_values(sluice_sessions{instance=~\"$instance\"}, servic)"}},
        ]},
        "panels": [
            {"type": "row", "title": "Ports", "id": 1},
            {"type": "timeseries", "title": "Good", "id": 2, "datasource": {"uid": "${ds}"}, "targets": [
                {"refId": "A", "expr": "sum by (instance, interface) (rate(sluice_port_packets_total{direction=\"rx\"}[$__rate_interval]))"},
                {"refId": "B", "expr": "histogram_quantile(0.99, sum by (le, service) (rate(sluice_latency_seconds_bucket[5m])))"},
                {"refId": "C", "expr": "sum by (service) (sluice_sessions) / on (service) group_left sum by (service) (sluice_sessions)"},
            ]},
            {"type": "timeseries", "title": "Planted", "id": 3, "datasource": {"uid": "${ds}"}, "targets": [
                {"refId": "A", "expr": "rate(sluice_port_packet_total[5m])"},
                {"refId": "B", "expr": "sum by (service) (rate(sluice_port_packets_total{reason=\"x\"}[5m]))"},
                {"refId": "C", "expr": "sum by (interface) (sum by (instance) (sluice_port_packets_total))"},
                {"refId": "D", "expr": "sluice_latency_seconds_count + sluice_latency_seconds"},
                {"refId": "E", "expr": "sluice_sessions{service=\"$nope\"}"},
            ]},
            {"type": "stat", "title": "Empty", "id": 3, "datasource": {"uid": "prom"}, "targets": [{"refId": "A", "expr": " "}]},
        ],
    });
    let problems = dashboard_problems(&dashboard, &families);
    let expected = [
        "row \"Ports\", panel \"Planted\", target A: `sluice_port_packet_total` is not an exposed metric",
        "row \"Ports\", panel \"Planted\", target B: `sum by (service)`: label `service` is not one of `sluice_port_packets_total`'s labels here {direction,instance,interface,job}",
        "row \"Ports\", panel \"Planted\", target B: matcher `reason`: label `reason` is not one of `sluice_port_packets_total`'s labels here {direction,instance,interface,job}",
        "row \"Ports\", panel \"Planted\", target C: `sum by (interface)`: label `interface` is not one of `sluice_port_packets_total`'s labels here {instance}",
        "row \"Ports\", panel \"Planted\", target D: `sluice_latency_seconds` is not an exposed metric",
        "row \"Ports\", panel \"Planted\", target E: variable `$nope` is not defined",
        "row \"Ports\", panel \"Empty\": id 3 is used twice",
        "row \"Ports\", panel \"Empty\": the data source is not ${ds}",
        "row \"Ports\", panel \"Empty\": no target with a query",
        "variable \"svc\": variable `$instance` is not defined",
        "variable \"svc\": `count by (servic)`: label `servic` is not one of `sluice_sessions`'s labels here {instance,job,service,worker}",
    ];
    for line in expected {
        assert!(problems.iter().any(|p| p == line), "missing:\n{line}\nin {problems:#?}");
    }
    assert_eq!(problems.len(), expected.len(), "{problems:#?}");
}

#[test]
fn the_reader_follows_labels_through_promql() {
    let families = queryable(&families_of(&[("sluice_m", &["a", "b"]), ("sluice_n", &["a", "c"])]), &BTreeMap::new());
    let ok = [
        "sluice_m",
        "-sluice_m offset 5m * 2 ^ 3",
        "count(sluice_m == 0) or vector(0)",
        "sum without (b) (sluice_m) + on (a) group_left (c) sum by (a, c) (sluice_n)",
        "sum by (a) (sluice_m) > bool 0 and sluice_n",
        "topk(3, sluice_m) by (b)",
        "sum(rate(sluice_m[5m:1m])) by (a)",
        "max_over_time(sluice_m[$__range]) / ignoring (b) sluice_n",
        "count_values(\"v\", sluice_m) # a comment",
        "sum by (x) (label_replace(sluice_m, \"x\", \"$1\", \"b\", \"(.*)\"))",
        "sum by (a, instance) (up{job=\"sluice\"})",
        "absent(sluice_m{a=\"1\"})",
        "sluice_m @ end()",
    ];
    for query in ok {
        assert_eq!(query_problems(query, &families), Vec::<String>::new(), "{query}");
    }
    let wrong = [
        ("sum by (c) (sluice_m)", "`sum by (c)`"),
        ("sum without (c) (sluice_m)", "`sum without (c)`"),
        ("sluice_m + on (b) sluice_n", "`on (b)`, right of `+`"),
        ("sluice_m / on (a) group_left (d) sluice_n", "`group_left (d)`"),
        ("sum by (b) (sluice_m + on (a) sluice_n)", "`sum by (b)`"),
        ("label_replace(sluice_m, \"x\", \"$1\", \"c\", \"(.*)\")", "`label_replace` source"),
        ("sum by (b) (topk(1, sum by (a) (sluice_m)))", "`sum by (b)`"),
        ("sluice_m{c=~\".+\"}", "matcher `c`"),
        ("frobnicate(sluice_m)", "function `frobnicate` is unknown"),
    ];
    for (query, problem) in wrong {
        let found = query_problems(query, &families);
        assert!(found.len() == 1 && found[0].contains(problem), "{query}: {found:?}");
    }
    assert_eq!(
        sluice_names("sum(sluice_a_total{job=\"sluice_b\"}) + my_sluice_c + {__name__=\"sluice_d_bucket\"}"),
        BTreeSet::from(["sluice_a_total".into(), "sluice_d_bucket".into()])
    );
}
