//! Backend lifecycle and configuration through the real `sluice` binary, with kernel clients
//! and servers in namespaces (scripts/testnet, backends 198.18.1.2-5):
//! - per-datagram UDP: one client socket sending 3000 datagrams to 3 equal backends puts
//!   exactly 1000 on each (rr), and every reply comes from VIP:port;
//! - a reload under steady UDP and TCP traffic that removes one backend and adds another: no
//!   datagram lost (those of the removed backend are rescheduled), no connection to a backend
//!   that stays broken, every connection to the removed backend reset (as documented), the
//!   new backend used;
//! - an invalid reload is refused, logged, and traffic goes on untouched; a reload that changes
//!   any restart-only section is refused whole, naming it.

mod common;

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use common::servers::{tcp_echo, udp_echo};
use common::*;

fn udp_service(name: &str, port: u16, per_packet: bool, backends: &[&str], local: &str) -> String {
    let mut s = format!(
        "\n[[service]]\nname = \"{name}\"\nvip = \"198.18.0.10:{port}\"\nprotocol = \"udp\"\nscheduler = \"rr\"\n\
         per_packet = {per_packet}\nlocal_ips = [\"{local}\"]\n"
    );
    for b in backends {
        s.push_str(&format!("[[service.backend]]\naddress = \"{b}:{port}\"\n"));
    }
    s
}

fn tcp_service(port: u16, backends: &[&str], local: &str) -> String {
    let mut s = format!(
        "\n[[service]]\nname = \"tcp{port}\"\nvip = \"198.18.0.10:{port}\"\nprotocol = \"tcp\"\nlocal_ips = [\"{local}\"]\n\
         [service.health]\non_failure = \"remove\"\n"
    );
    for b in backends {
        s.push_str(&format!("[[service.backend]]\naddress = \"{b}:{port}\"\n"));
    }
    s
}

/// Sends `payload` from `socket` to the VIP and waits for its echo from VIP:`port`.
fn echo(socket: &UdpSocket, port: u16, payload: &[u8]) -> bool {
    let vip = format!("198.18.0.10:{port}");
    let _ = socket.send_to(payload, &vip);
    let mut buf = [0u8; 512];
    matches!(socket.recv_from(&mut buf), Ok((n, from)) if from.to_string() == vip && &buf[..n] == payload)
}

#[test]
fn per_datagram_rr_puts_exactly_a_third_on_each_backend() {
    let net = TestNet::up("sll", 3);
    let backends = ["198.18.1.2", "198.18.1.3", "198.18.1.4"];
    let servers = udp_echo(&net.srv(), &["198.18.1.2:53", "198.18.1.3:53", "198.18.1.4:53"]);
    let sluice = Sluice::start(&net, &config(&udp_service("dns", 53, true, &backends, "198.18.1.100")));

    let result = in_netns(&net.cli(), || {
        let s = UdpSocket::bind("198.18.0.2:0").unwrap();
        s.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
        let warm = (0..30).any(|_| echo(&s, 53, b"warm-up"));
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        (warm, s)
    });
    let (warm, socket) = result;
    assert!(warm, "no echo through the VIP:\n{}", sluice.log_text());
    let before = servers.counts();
    let lost = (0..3000).filter(|i| !echo(&socket, 53, format!("datagram {i}").as_bytes())).count();
    assert_eq!(lost, 0, "every datagram answered from the VIP");
    let spread: Vec<u64> = servers.counts().iter().zip(&before).map(|(a, b)| a - b).collect();
    assert_eq!(spread, [1000, 1000, 1000], "one client socket, per-datagram rr");
}

#[test]
fn reload_under_traffic_loses_nothing_that_stays() {
    let net = TestNet::up("slr", 4);
    let udp = udp_echo(&net.srv(), &["198.18.1.2:53", "198.18.1.3:53", "198.18.1.4:53"]);
    let tcp = tcp_echo(&net.srv(), &["198.18.1.2:9000", "198.18.1.3:9000", "198.18.1.4:9000"]);
    let before = [
        udp_service("dns", 53, false, &["198.18.1.2", "198.18.1.3"], "198.18.1.100"),
        tcp_service(9000, &["198.18.1.2", "198.18.1.3"], "198.18.1.101"),
    ];
    let after = [
        udp_service("dns", 53, false, &["198.18.1.3", "198.18.1.4"], "198.18.1.100"),
        tcp_service(9000, &["198.18.1.3", "198.18.1.4"], "198.18.1.101"),
    ];
    let sluice = Sluice::start(&net, &config(&before.concat()));

    // Steady traffic: 8 UDP flows and 8 TCP connections, each exchanging a message every 5 ms.
    let (flows, conns) = in_netns(&net.cli(), || {
        let flows: Vec<UdpSocket> = (0..8)
            .map(|_| {
                let s = UdpSocket::bind("198.18.0.2:0").unwrap();
                s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                s
            })
            .collect();
        let warm = flows.iter().all(|s| (0..30).any(|_| echo(s, 53, b"warm-up")));
        assert!(warm, "UDP through the VIP");
        let conns: Vec<TcpStream> = (0..8)
            .map(|_| {
                let c = TcpStream::connect_timeout(&"198.18.0.10:9000".parse().unwrap(), Duration::from_secs(5))
                    .expect("connect");
                c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                c
            })
            .collect();
        (flows, conns)
    });
    let mut conns: Vec<(TcpStream, String)> = conns
        .into_iter()
        .map(|mut c| {
            let backend = exchange(&mut c, "hello").expect("first exchange");
            (c, backend)
        })
        .collect();
    assert!(
        conns.iter().any(|(_, b)| b.starts_with("198.18.1.2"))
            && conns.iter().any(|(_, b)| b.starts_with("198.18.1.3"))
    );

    let mut lost = 0;
    let mut reset_staying = Vec::new();
    let mut reset_removed = vec![false; conns.len()];
    let mut reloaded = false;
    let start = Instant::now();
    for round in 0..300 {
        if round == 100 {
            let log = sluice.reload(&config(&after.concat()));
            assert!(
                log.contains("backend 198.18.1.2:53 removed") && log.contains("backend 198.18.1.4:9000 added"),
                "{log}"
            );
            reloaded = true;
        }
        for s in &flows {
            if !echo(s, 53, format!("round {round}").as_bytes()) {
                lost += 1;
            }
        }
        for (i, (c, backend)) in conns.iter_mut().enumerate() {
            if reset_removed[i] {
                continue;
            }
            match exchange(c, &format!("round {round}")) {
                Ok(_) => {}
                // A connection to the removed backend: the client gets a reset.
                Err(e) if backend.starts_with("198.18.1.2") && reloaded => {
                    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{backend} round {round}: {e}");
                    reset_removed[i] = true;
                }
                Err(e) => reset_staying.push(format!("{backend} round {round}: {e}")),
            }
        }
        std::thread::sleep(Duration::from_millis(5));
        assert!(start.elapsed() < Duration::from_secs(60), "traffic loop overran");
    }
    assert_eq!(lost, 0, "UDP datagrams lost across the reload");
    assert!(reset_staying.is_empty(), "connections to staying backends broke: {reset_staying:?}");
    for (i, (_, backend)) in conns.iter().enumerate() {
        assert_eq!(reset_removed[i], backend.starts_with("198.18.1.2"), "{backend}: reset only if removed");
    }
    let new_conn = in_netns(&net.cli(), || {
        (0..6)
            .map(|_| {
                let mut c =
                    TcpStream::connect_timeout(&"198.18.0.10:9000".parse().unwrap(), Duration::from_secs(5)).unwrap();
                c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                exchange(&mut c, "new").unwrap()
            })
            .collect::<Vec<_>>()
    });
    assert!(
        new_conn.iter().all(|b| !b.starts_with("198.18.1.2")),
        "no new connection to the removed backend: {new_conn:?}"
    );
    assert!(new_conn.iter().any(|b| b.starts_with("198.18.1.4")), "the added backend takes connections: {new_conn:?}");
    assert!(udp.count(2) > 0, "the added UDP backend took the removed one's flows");
    drop(tcp);
}

#[test]
fn an_invalid_reload_is_refused_and_traffic_goes_on() {
    let net = TestNet::up("sli", 3);
    let udp = udp_echo(&net.srv(), &["198.18.1.2:53", "198.18.1.3:53"]);
    let good = config(&udp_service("dns", 53, false, &["198.18.1.2", "198.18.1.3"], "198.18.1.100"));
    let sluice = Sluice::start(&net, &good);
    let socket = in_netns(&net.cli(), || {
        let s = UdpSocket::bind("198.18.0.2:0").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        s
    });
    assert!((0..30).any(|_| echo(&socket, 53, b"warm-up")));

    let log = sluice.reload(&good.replace("scheduler = \"rr\"", "scheduler = \"fastest\""));
    assert!(log.contains("reload refused"), "{log}");
    assert!(log.contains("sluice.toml:") && log.contains("fastest"), "the problem with its position: {log}");
    // Every section that only a restart can change: refused whole, naming it.
    let restart_only = [
        ("[dpdk]", good.replace("mbufs = 8191", "mbufs = 16383")),
        ("[cpu]", good.replace("workers = [1]", "workers = [0]")),
        ("[api]", format!("{good}\n[api]\nsocket = \"{}\"\nmetrics = \"127.0.0.1:9274\"\n", sluice.socket.display())),
        ("[sessions]", format!("{good}\n[sessions]\ncapacity = 4096\n")),
        ("[steering]", format!("{good}\n[steering]\nmode = \"redirect\"\n")),
        ("[timeouts]", format!("{good}\n[timeouts]\nudp = \"1m\"\n")),
        ("[[interface]]", good.replace("198.18.1.1/24", "198.18.1.254/24")),
        (
            "[bgp]",
            format!(
                "{good}\n[bgp]\nlocal_as = 65001\n[[bgp.neighbor]]\naddress = \"198.18.0.254\"\nremote_as = 65000\n"
            ),
        ),
        ("[cluster]", format!("{good}\n[cluster]\nnode = 1\naddress = \"198.18.0.1\"\npeers = [\"198.18.0.3\"]\n")),
    ];
    for (section, text) in restart_only {
        let log = sluice.reload(&text);
        assert!(log.contains("only a restart applies") && log.contains(section), "{section}: {log}");
    }
    assert!(sluice.log_text().matches("reload refused").count() >= 10, "each refusal logged");

    let answered = (0..200).filter(|i| echo(&socket, 53, format!("after {i}").as_bytes())).count();
    assert_eq!(answered, 200, "traffic untouched by refused reloads");
    assert!(udp.total() >= 200);
}

/// One request and its echo; returns the backend address the server reports.
fn exchange(c: &mut TcpStream, message: &str) -> std::io::Result<String> {
    c.write_all(format!("{message}\n").as_bytes())?;
    let mut buf = [0u8; 256];
    let n = c.read(&mut buf)?;
    if n == 0 {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed"));
    }
    let reply = String::from_utf8_lossy(&buf[..n]).into_owned();
    let (backend, echoed) = reply.split_once(' ').unwrap_or(("", ""));
    if echoed.trim_end() != message {
        return Err(std::io::Error::other(format!("bad echo {reply:?}")));
    }
    Ok(backend.to_owned())
}
