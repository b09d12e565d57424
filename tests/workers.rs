//! Two workers without locks, through the real `sluice` binary: both ports opened with two
//! queue pairs (af_packet `qpairs=2`, which spreads flows over the queues by a kernel hash that
//! Sluice cannot predict), so replies often arrive at the worker that does not own their local
//! IP. Hundreds of concurrent UDP flows and TCP connections through the VIP all get correct
//! replies; the redirect counters show the software fallback at work, and both workers own
//! sessions.

mod common;

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::time::Duration;

use common::servers::{tcp_echo, udp_echo};
use common::*;

const SERVICES: &str = r#"
[sessions]
capacity = 65536

[steering]
mode = "auto"

[[service]]
name = "dns"
vip = "198.18.0.10:53"
protocol = "udp"
local_ips = ["198.18.1.100", "198.18.1.101"]
[[service.backend]]
address = "198.18.1.2:53"
[[service.backend]]
address = "198.18.1.3:53"

[[service]]
name = "echo"
vip = "198.18.0.10:9000"
protocol = "tcp"
local_ips = ["198.18.1.102", "198.18.1.103"]
[[service.backend]]
address = "198.18.1.2:9000"
[[service.backend]]
address = "198.18.1.3:9000"
"#;

#[test]
fn hundreds_of_flows_over_two_workers_all_get_their_replies() {
    let net = TestNet::up("slw", 3);
    let udp = udp_echo(&net.srv(), &["198.18.1.2:53", "198.18.1.3:53"]);
    let tcp = tcp_echo(&net.srv(), &["198.18.1.2:9000", "198.18.1.3:9000"]);
    let sluice = Sluice::start(&net, &two_worker_config(SERVICES));
    assert!(sluice.log_text().contains("reply steering redirect"), "{}", sluice.log_text());

    // Warm up ARP on both sides.
    let warm = in_netns(&net.cli(), || {
        let s = UdpSocket::bind("198.18.0.2:0").unwrap();
        s.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
        (0..30).any(|_| {
            s.send_to(b"warm", "198.18.0.10:53").unwrap();
            s.recv_from(&mut [0u8; 16]).is_ok()
        })
    });
    assert!(warm, "no echo:\n{}", sluice.log_text());

    // 300 UDP flows open at once, 3 datagrams each, every reply checked.
    let bad = in_netns(&net.cli(), || {
        let sockets: Vec<UdpSocket> = (0..300)
            .map(|_| {
                let s = UdpSocket::bind("198.18.0.2:0").unwrap();
                s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                s
            })
            .collect();
        let mut bad = Vec::new();
        for round in 0..3 {
            for (i, s) in sockets.iter().enumerate() {
                s.send_to(format!("flow {i} round {round}").as_bytes(), "198.18.0.10:53").unwrap();
            }
            for (i, s) in sockets.iter().enumerate() {
                let mut buf = [0u8; 64];
                match s.recv_from(&mut buf) {
                    Ok((n, from))
                        if from.to_string() == "198.18.0.10:53"
                            && buf[..n] == *format!("flow {i} round {round}").as_bytes() => {}
                    other => bad.push(format!("flow {i} round {round}: {other:?}")),
                }
            }
        }
        bad
    });
    assert!(bad.is_empty(), "{} bad UDP replies, first {:?}", bad.len(), bad.first());
    assert!(udp.total() >= 900, "the servers saw the datagrams");

    // 200 TCP connections open at once, an exchange on each.
    let bad = in_netns(&net.cli(), || {
        let mut conns: Vec<TcpStream> = (0..200)
            .map(|_| {
                let c = TcpStream::connect_timeout(&"198.18.0.10:9000".parse().unwrap(), Duration::from_secs(5))
                    .expect("connect");
                c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
                c
            })
            .collect();
        let mut bad = Vec::new();
        for (i, c) in conns.iter_mut().enumerate() {
            c.write_all(format!("conn {i}\n").as_bytes()).unwrap();
        }
        for (i, c) in conns.iter_mut().enumerate() {
            let mut buf = [0u8; 128];
            match c.read(&mut buf) {
                Ok(n) if String::from_utf8_lossy(&buf[..n]).ends_with(&format!(" conn {i}\n")) => {}
                other => bad.push(format!("conn {i}: {other:?}")),
            }
        }
        bad
    });
    assert!(bad.is_empty(), "{} bad TCP replies, first {:?}", bad.len(), bad.first());
    drop(tcp);

    let text = stdout(&run_in(&net.lb(), &["curl", "-sS", "--max-time", "5", "http://127.0.0.1:9273/metrics"]));
    let out = metric_sum(&text, "sluice_worker_redirected_total", &["direction=\"out\""]) as u64;
    let inn = metric_sum(&text, "sluice_worker_redirected_total", &["direction=\"in\""]) as u64;
    assert!(out > 0 && out == inn, "redirected out {out}, in {inn}:\n{text}");
    assert_eq!(metric_sum(&text, "sluice_packets_dropped_total", &["reason=\"redirect_full\""]) as u64, 0);
    assert!(text.contains("sluice_port_steering{interface=\"lan\",mode=\"redirect\"} 1"), "{text}");
    let created: Vec<u64> = (0..2)
        .map(|w| {
            let status = sluice.ctl_json(&["status"]);
            assert_eq!(status["workers"].as_array().unwrap().len(), 2);
            metric_sum(&text, "sluice_sessions", &[&format!("worker=\"{w}\"")]) as u64
        })
        .collect();
    assert!(created.iter().all(|&n| n > 0), "both workers own sessions: {created:?}");
}
