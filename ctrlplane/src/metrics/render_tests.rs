//! The text exposition of a small sample, line for line: HELP and TYPE for every family,
//! counters as given, label values escaped, empty families left out.

use super::*;

fn sample() -> Sample {
    let backend = "198.18.1.2:5353".to_owned();
    let service = "dns".to_owned();
    Sample {
        version: "0.1.0 (commit abc)".into(),
        port_packets: vec![
            PortCount { interface: "wan".into(), direction: PortDirection::Rx, value: 1_000 },
            PortCount { interface: "wan".into(), direction: PortDirection::Tx, value: 990 },
        ],
        port_bytes: vec![PortCount { interface: "wan".into(), direction: PortDirection::Rx, value: 64_000 }],
        port_dropped: vec![PortDrops { interface: "wan".into(), reason: "imissed".into(), value: 3 }],
        port_steering: vec![PortSteering { interface: "lan".into(), mode: "redirect".into() }],
        packets_dropped: vec![WorkerDrops { worker: 0, reason: "no_session".into(), value: 7 }],
        worker_redirected: vec![WorkerRedirected { worker: 0, direction: "out", value: 3 }],
        worker_busy: vec![WorkerBusy { worker: 0, ratio: 0.25 }],
        worker_cycles: vec![WorkerCycles { worker: 0, part: "own", cycles: 120.5 }],
        sessions: vec![ServiceSessions { service: service.clone(), worker: 1, value: 12 }],
        sessions_created: vec![ServiceCount { service: service.clone(), value: 18_446_744_073_709 }],
        client_address: vec![ServiceResultCount { service: service.clone(), result: "added", value: 5 }],
        synproxy: vec![ServiceResultCount { service: service.clone(), result: "invalid", value: 2 }],
        sessions_evicted: vec![WorkerCount { worker: 0, value: 4 }],
        longest_loop: vec![WorkerSeconds { worker: 0, seconds: 0.00125 }],
        loops: vec![WorkerCount { worker: 0, value: 912_345 }],
        packet_wait: vec![WorkerHistogram {
            worker: 0,
            buckets: vec![(0.000001, 3), (0.000002, 5)],
            count: 6,
            sum_seconds: 0.00002,
        }],
        mbufs_available: Some(16_000),
        backend_up: vec![
            BackendUp { service: service.clone(), backend: backend.clone(), up: true },
            BackendUp { service: service.clone(), backend: "198.18.1.3:5353".into(), up: false },
        ],
        backend_weight: vec![BackendWeight { service: service.clone(), backend: backend.clone(), weight: 5 }],
        backend_packets: vec![
            BackendCount {
                service: service.clone(),
                backend: backend.clone(),
                direction: BackendDirection::ToBackend,
                value: 500,
            },
            BackendCount {
                service: service.clone(),
                backend: backend.clone(),
                direction: BackendDirection::FromBackend,
                value: 499,
            },
        ],
        backend_bytes: vec![BackendCount {
            service: service.clone(),
            backend: backend.clone(),
            direction: BackendDirection::FromBackend,
            value: 31_936,
        }],
        health_checks: vec![
            HealthChecks { service: service.clone(), backend: backend.clone(), result: CheckResult::Ok, value: 60 },
            HealthChecks { service, backend, result: CheckResult::Fail, value: 2 },
        ],
        local_ports_free: vec![LocalPortsFree { local_ip: "198.18.1.100".into(), value: 64_511 }],
        bgp_neighbor_up: vec![NeighborUp { neighbor: "198.18.0.254".into(), up: true }],
        route_announced: vec![
            RouteAnnounced { prefix: "198.18.10.10/32".into(), announced: false },
            RouteAnnounced { prefix: "198.18.12.1/32".into(), announced: true },
        ],
        bird_restarts: Some(2),
        peers: vec![
            PeerSample {
                peer: "198.18.0.12".into(),
                up: true,
                sessions: 7,
                messages_in: 10,
                messages_out: 11,
                records_in: 20,
                records_out: 21,
                resends: 1,
                dropped: vec![("replay".into(), 2)],
            },
            PeerSample { peer: "unknown".into(), dropped: vec![("unknown_peer".into(), 3)], ..PeerSample::default() },
        ],
        ..Sample::default()
    }
}

#[test]
fn a_sample_renders_line_for_line() {
    let expected = r#"# HELP sluice_port_packets_total Packets received (rx) and sent (tx) by each port.
# TYPE sluice_port_packets_total counter
sluice_port_packets_total{interface="wan",direction="rx"} 1000
sluice_port_packets_total{interface="wan",direction="tx"} 990
# HELP sluice_port_bytes_total Bytes received (rx) and sent (tx) by each port.
# TYPE sluice_port_bytes_total counter
sluice_port_bytes_total{interface="wan",direction="rx"} 64000
# HELP sluice_port_dropped_total Packets each port dropped or failed to send, by reason.
# TYPE sluice_port_dropped_total counter
sluice_port_dropped_total{interface="wan",reason="imissed"} 3
# HELP sluice_port_steering How replies reach the worker owning their local IP: 1 for the mode in use.
# TYPE sluice_port_steering gauge
sluice_port_steering{interface="lan",mode="redirect"} 1
# HELP sluice_packets_dropped_total Packets the data path dropped, by worker and reason.
# TYPE sluice_packets_dropped_total counter
sluice_packets_dropped_total{worker="0",reason="no_session"} 7
# HELP sluice_worker_redirected_total Packets a worker handed to the worker owning their local IP (out) or took from others (in).
# TYPE sluice_worker_redirected_total counter
sluice_worker_redirected_total{worker="0",direction="out"} 3
# HELP sluice_worker_busy_ratio Share of each worker's poll cycles that found work.
# TYPE sluice_worker_busy_ratio gauge
sluice_worker_busy_ratio{worker="0"} 0.25
# HELP sluice_worker_cycles_per_packet TSC cycles a worker spent per packet received over the last second, in Sluice's own work (own) and in the drivers' receive and transmit calls (driver).
# TYPE sluice_worker_cycles_per_packet gauge
sluice_worker_cycles_per_packet{worker="0",part="own"} 120.5
# HELP sluice_sessions Sessions in each worker's table, by service.
# TYPE sluice_sessions gauge
sluice_sessions{service="dns",worker="1"} 12
# HELP sluice_sessions_created_total Sessions created, by service.
# TYPE sluice_sessions_created_total counter
sluice_sessions_created_total{service="dns"} 18446744073709
# HELP sluice_client_address_total What became of the client's address on the way to a backend (client_address), by service and result.
# TYPE sluice_client_address_total counter
sluice_client_address_total{service="dns",result="added"} 5
# HELP sluice_synproxy_total SYN proxy cookies, by service and result: sent (SYNs answered), valid and invalid (ACKs).
# TYPE sluice_synproxy_total counter
sluice_synproxy_total{service="dns",result="invalid"} 2
# HELP sluice_sessions_evicted_total Unconfirmed sessions ended to make room for a new flow (sessions.when_full = evict), by worker.
# TYPE sluice_sessions_evicted_total counter
sluice_sessions_evicted_total{worker="0"} 4
# HELP sluice_worker_longest_loop_seconds The longest poll loop of each worker since start.
# TYPE sluice_worker_longest_loop_seconds gauge
sluice_worker_longest_loop_seconds{worker="0"} 0.00125
# HELP sluice_worker_packet_wait_seconds Packets by the longest they can have been in their worker: from the poll before the one that took them to the end of the loop that sent them.
# TYPE sluice_worker_packet_wait_seconds histogram
sluice_worker_packet_wait_seconds_bucket{worker="0",le="0.000001"} 3
sluice_worker_packet_wait_seconds_bucket{worker="0",le="0.000002"} 5
sluice_worker_packet_wait_seconds_bucket{worker="0",le="+Inf"} 6
sluice_worker_packet_wait_seconds_sum{worker="0"} 0.00002
sluice_worker_packet_wait_seconds_count{worker="0"} 6
# HELP sluice_worker_loops_total Poll loops each worker has run, finding work or not: a loop rate that stops rising is a stalled worker.
# TYPE sluice_worker_loops_total counter
sluice_worker_loops_total{worker="0"} 912345
# HELP sluice_mbufs_available Free mbufs in the packet buffer pool, per-core caches included.
# TYPE sluice_mbufs_available gauge
sluice_mbufs_available 16000
# HELP sluice_backend_up 1 while the backend passes its health checks, 0 while it is down.
# TYPE sluice_backend_up gauge
sluice_backend_up{service="dns",backend="198.18.1.2:5353"} 1
sluice_backend_up{service="dns",backend="198.18.1.3:5353"} 0
# HELP sluice_backend_weight The weight in force for each backend.
# TYPE sluice_backend_weight gauge
sluice_backend_weight{service="dns",backend="198.18.1.2:5353"} 5
# HELP sluice_backend_packets_total Packets forwarded to and received from each backend.
# TYPE sluice_backend_packets_total counter
sluice_backend_packets_total{service="dns",backend="198.18.1.2:5353",direction="to_backend"} 500
sluice_backend_packets_total{service="dns",backend="198.18.1.2:5353",direction="from_backend"} 499
# HELP sluice_backend_bytes_total Bytes forwarded to and received from each backend.
# TYPE sluice_backend_bytes_total counter
sluice_backend_bytes_total{service="dns",backend="198.18.1.2:5353",direction="from_backend"} 31936
# HELP sluice_health_checks_total Health checks of each backend, by result.
# TYPE sluice_health_checks_total counter
sluice_health_checks_total{service="dns",backend="198.18.1.2:5353",result="ok"} 60
sluice_health_checks_total{service="dns",backend="198.18.1.2:5353",result="fail"} 2
# HELP sluice_local_ports_free Free FULLNAT source ports of each local IP.
# TYPE sluice_local_ports_free gauge
sluice_local_ports_free{local_ip="198.18.1.100"} 64511
# HELP sluice_bgp_neighbor_up 1 while the BGP session with the neighbour is established.
# TYPE sluice_bgp_neighbor_up gauge
sluice_bgp_neighbor_up{neighbor="198.18.0.254"} 1
# HELP sluice_route_announced 1 while BIRD announces the /32 (a VIP or a local IP), 0 while it is withdrawn.
# TYPE sluice_route_announced gauge
sluice_route_announced{prefix="198.18.10.10/32"} 0
sluice_route_announced{prefix="198.18.12.1/32"} 1
# HELP sluice_bird_restarts_total Times BIRD exited and was started again.
# TYPE sluice_bird_restarts_total counter
sluice_bird_restarts_total 2
# HELP sluice_cluster_peer_up 1 while the cluster peer is heard from (within dead_after).
# TYPE sluice_cluster_peer_up gauge
sluice_cluster_peer_up{peer="198.18.0.12"} 1
# HELP sluice_sync_sessions Copies of the peer's sessions this node holds, over all workers.
# TYPE sluice_sync_sessions gauge
sluice_sync_sessions{peer="198.18.0.12"} 7
# HELP sluice_sync_messages_total Sync messages from (in) and to (out) each peer.
# TYPE sluice_sync_messages_total counter
sluice_sync_messages_total{peer="198.18.0.12",direction="in"} 10
sluice_sync_messages_total{peer="198.18.0.12",direction="out"} 11
# HELP sluice_sync_records_total Session records from (in) and to (out) each peer.
# TYPE sluice_sync_records_total counter
sluice_sync_records_total{peer="198.18.0.12",direction="in"} 20
sluice_sync_records_total{peer="198.18.0.12",direction="out"} 21
# HELP sluice_sync_resends_total Sync messages sent to each peer again for want of an acknowledgement.
# TYPE sluice_sync_resends_total counter
sluice_sync_resends_total{peer="198.18.0.12"} 1
# HELP sluice_sync_dropped_total Sync messages or records refused or lost, by peer and reason.
# TYPE sluice_sync_dropped_total counter
sluice_sync_dropped_total{peer="198.18.0.12",reason="replay"} 2
sluice_sync_dropped_total{peer="unknown",reason="unknown_peer"} 3
# HELP sluice_build_info The running version, as a label; the value is always 1.
# TYPE sluice_build_info gauge
sluice_build_info{version="0.1.0 (commit abc)"} 1
"#;
    let text = render(&sample());
    for (got, want) in text.lines().zip(expected.lines()) {
        assert_eq!(got, want);
    }
    assert_eq!(text, expected);
}

#[test]
fn label_values_are_escaped() {
    let sample = Sample {
        version: "1.0".into(),
        port_dropped: vec![PortDrops { interface: "we\"ird\\name\nx".into(), reason: "tx_full".into(), value: 1 }],
        ..Sample::default()
    };
    let text = render(&sample);
    assert!(
        text.contains("sluice_port_dropped_total{interface=\"we\\\"ird\\\\name\\nx\",reason=\"tx_full\"} 1\n"),
        "{text}"
    );
}

#[test]
fn families_without_rows_are_left_out() {
    let text = render(&Sample { version: "1.0".into(), ..Sample::default() });
    assert_eq!(
        text,
        "# HELP sluice_build_info The running version, as a label; the value is always 1.\n\
         # TYPE sluice_build_info gauge\n\
         sluice_build_info{version=\"1.0\"} 1\n"
    );
}

#[test]
fn every_family_has_help_and_type_and_counters_end_in_total() {
    let text = render(&sample());
    let families: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("# TYPE ")).collect();
    assert_eq!(families.len(), 33);
    for family in families {
        let (name, kind) = family.split_once(' ').unwrap();
        assert!(text.contains(&format!("# HELP {name} ")), "{name} has HELP");
        assert_eq!(kind == "counter", name.ends_with("_total"), "{name} is a {kind}");
    }
}
