//! Documented behaviour through the real binary (scripts/testnet), each shown once:
//! - a backend that fails its checks with `on_failure = "remove"` has its connections reset,
//!   with `inhibit` they go on; a service removed by a reload resets its connections;
//! - `sluicectl backend ... weight`, `sessions` and `reload` against a running Sluice;
//! - gratuitous ARP for the VIPs and local IPs at start;
//! - an ICMP error from a backend reaches the client as if from the VIP, and a packet to
//!   forward whose TTL runs out is answered with time exceeded from the host's address;
//! - a worker that panics stops the appliance with exit code 1.

mod common;

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::time::Duration;

use common::servers::{tcp_echo, udp_echo};
use common::*;

const SETTLE: Duration = Duration::from_secs(15);

fn echo_service(name: &str, port: u16, extra: &str) -> String {
    format!(
        "\n[[service]]\nname = \"{name}\"\nvip = \"198.18.0.10:{port}\"\nprotocol = \"tcp\"\nlocal_ips = [\"198.18.1.10{}\"]\n{extra}\n\
         [[service.backend]]\naddress = \"198.18.1.2:{port}\"\n[[service.backend]]\naddress = \"198.18.1.3:{port}\"\n",
        port % 10
    )
}

fn checks(on_failure: &str) -> String {
    format!(
        "[service.health]\ncheck = \"tcp\"\ninterval = \"200ms\"\ntimeout = \"150ms\"\nrise = 1\nfall = 1\non_failure = \"{on_failure}\"\n"
    )
}

/// A connection to the VIP's `port` whose echoes come from `backend` (tried until one does).
fn connection_to(net: &TestNet, port: u16, backend: &str) -> TcpStream {
    let backend = backend.to_owned();
    in_netns(&net.cli(), move || {
        for _ in 0..20 {
            let mut c = TcpStream::connect_timeout(&format!("198.18.0.10:{port}").parse().unwrap(), SETTLE).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            if exchange(&mut c, "hello").is_ok_and(|b| b == backend) {
                return c;
            }
        }
        panic!("no connection reached {backend}");
    })
}

/// One line and its echo: the backend's address.
fn exchange(c: &mut TcpStream, line: &str) -> std::io::Result<String> {
    c.write_all(format!("{line}\n").as_bytes())?;
    let mut buf = [0u8; 256];
    let n = c.read(&mut buf)?;
    let reply = String::from_utf8_lossy(&buf[..n]).into_owned();
    match reply.split_once(' ') {
        Some((backend, echoed)) if echoed.trim_end() == line => Ok(backend.to_owned()),
        _ => Err(std::io::Error::other(format!("bad echo {reply:?}"))),
    }
}

fn backend_state(sluice: &Sluice, service: &str, backend: &str) -> String {
    let services = sluice.ctl_json(&["services"]);
    let s = services.as_array().unwrap().iter().find(|s| s["name"] == service).cloned().unwrap_or_default();
    let b = s["backends"].as_array().into_iter().flatten().find(|b| b["address"] == backend).cloned();
    b.map(|b| b["state"].as_str().unwrap_or("").to_owned()).unwrap_or_default()
}

#[test]
fn a_failed_or_removed_backend_ends_its_sessions_as_configured() {
    let net = TestNet::up("slb1", 3);
    let _echo = tcp_echo(&net.srv(), &["198.18.1.2:9000", "198.18.1.3:9000", "198.18.1.2:9001", "198.18.1.3:9001"]);
    let services =
        echo_service("removing", 9000, &checks("remove")) + &echo_service("inhibiting", 9001, &checks("inhibit"));
    let sluice = Sluice::start(&net, &config(&services));
    for (s, b) in [("removing", "198.18.1.2:9000"), ("inhibiting", "198.18.1.2:9001")] {
        assert!(wait_until(SETTLE, || backend_state(&sluice, s, b) == "up"), "{s} {b} never up");
    }
    let mut removing = connection_to(&net, 9000, "198.18.1.2");
    let mut inhibiting = connection_to(&net, 9001, "198.18.1.2");
    let mut staying = connection_to(&net, 9000, "198.18.1.3");

    // 198.18.1.2 stops answering health checks (which come from the host's address 198.18.1.1);
    // the data path's traffic (from the local IPs) still reaches it.
    let nft = |rule: &str| run_in(&net.srv(), &["nft", rule]);
    assert!(nft("add table inet t; add chain inet t in { type filter hook input priority 0; }; \
                 add rule inet t in ip saddr 198.18.1.1 ip daddr 198.18.1.2 drop")
    .status
    .success());
    for (s, b) in [("removing", "198.18.1.2:9000"), ("inhibiting", "198.18.1.2:9001")] {
        assert!(wait_until(SETTLE, || backend_state(&sluice, s, b) == "down"), "{s} {b} never down");
    }
    let e = exchange(&mut removing, "after").unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "on_failure = remove: the client gets a reset ({e})");
    assert_eq!(exchange(&mut inhibiting, "after").unwrap(), "198.18.1.2", "inhibit: the connection goes on");
    assert_eq!(exchange(&mut staying, "after").unwrap(), "198.18.1.3");

    // A service removed by a reload (`sluicectl reload`, which answers once the workers have the
    // new configuration): its connections are reset on their next packet.
    let text = std::fs::read_to_string(&sluice.config).unwrap();
    let kept = text.replace(&echo_service("removing", 9000, &checks("remove")), "");
    assert_ne!(kept, text);
    std::fs::write(&sluice.config, kept).unwrap();
    let (code, out, err) = sluice.ctl(&["reload"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("service removing removed"), "{out}");
    let e = exchange(&mut staying, "after reload").unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
    assert_eq!(exchange(&mut inhibiting, "after reload").unwrap(), "198.18.1.2", "the staying service goes on");
}

#[test]
fn sluicectl_changes_weights_lists_sessions_and_reloads() {
    let net = TestNet::up("slb2", 3);
    let udp = udp_echo(&net.srv(), &["198.18.1.2:53", "198.18.1.3:53", "198.18.1.4:53"]);
    let dns = |backends: &[&str]| {
        let mut s =
            "\n[[service]]\nname = \"dns\"\nvip = \"198.18.0.10:53\"\nprotocol = \"udp\"\nscheduler = \"wrr\"\n\
                     per_packet = true\nlocal_ips = [\"198.18.1.100\"]\n"
                .to_owned();
        for b in backends {
            s.push_str(&format!("[[service.backend]]\naddress = \"{b}:53\"\n"));
        }
        s
    };
    let sluice = Sluice::start(&net, &config(&dns(&["198.18.1.2", "198.18.1.3"])));
    let socket = in_netns(&net.cli(), || {
        let s = UdpSocket::bind("198.18.0.2:0").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        s.connect("198.18.0.10:53").unwrap();
        s
    });
    let send = |n: usize| -> usize {
        (0..n)
            .filter(|i| {
                let p = format!("datagram {i}");
                socket.send(p.as_bytes()).is_ok() && socket.recv(&mut [0u8; 64]).is_ok_and(|got| got == p.len())
            })
            .count()
    };
    assert!(wait_until(SETTLE, || send(1) == 1), "echo through the VIP");
    let share = |n| {
        let before = udp.counts();
        assert_eq!(send(n), n, "every datagram answered");
        udp.counts().iter().zip(&before).map(|(a, b)| a - b).collect::<Vec<u64>>()
    };

    let (code, out, err) = sluice.ctl(&["backend", "dns", "198.18.1.2:53", "weight", "3"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("198.18.1.2:53") && out.contains('3'), "{out}");
    assert_eq!(share(400), [300, 100, 0], "weights 3:1 per datagram");
    let (code, _, err) = sluice.ctl(&["backend", "dns", "198.18.1.3:53", "weight", "0"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(share(100), [100, 0, 0], "weight 0 takes nothing new");

    let (code, out, err) = sluice.ctl(&["sessions", "dns"]);
    assert_eq!(code, 0, "{err}");
    let client = format!("198.18.0.2:{}", socket.local_addr().unwrap().port());
    assert!(out.starts_with("SERVICE") || out.contains("no sessions"), "{out}");
    assert!(wait_until(SETTLE, || sluice.ctl(&["sessions", "dns"]).1.contains(&client)), "the flow is listed");

    // The file changes; `sluicectl reload` applies it and says what changed. The run-time
    // weights are gone with it: the file is the truth again.
    std::fs::write(
        &sluice.config,
        std::fs::read_to_string(&sluice.config).unwrap().replace(
            "address = \"198.18.1.3:53\"\n",
            "address = \"198.18.1.3:53\"\n[[service.backend]]\naddress = \"198.18.1.4:53\"\n",
        ),
    )
    .unwrap();
    let (code, out, err) = sluice.ctl(&["reload"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "reloaded, changes:\n  service dns: backend 198.18.1.4:53 added\n");
    assert_eq!(share(300), [100, 100, 100], "three equal backends after the reload");
    let (code, out, _) = sluice.ctl(&["reload"]);
    assert_eq!((code, out.lines().next()), (0, Some("nothing changed")));
}

#[test]
fn vips_and_local_ips_are_announced_by_gratuitous_arp_at_start() {
    let net = TestNet::up("slb3", 1);
    let capture = Capture::open(&net.cli(), "cli0");
    let service = "\n[[service]]\nname = \"dns\"\nvip = \"198.18.0.10:53\"\nprotocol = \"udp\"\n\
                   local_ips = [\"198.18.1.100\"]\n[[service.backend]]\naddress = \"198.18.1.2:53\"\n";
    let _sluice = Sluice::start(&net, &config(service));
    let lb0 = stdout(&run_in(&net.lb(), &["cat", "/sys/class/net/lb0/address"])).trim().to_owned();
    let mac: Vec<u8> = lb0.split(':').map(|h| u8::from_str_radix(h, 16).unwrap()).collect();
    // An ARP request (opcode 1) whose sender and target are both the VIP, from the port's MAC.
    let garp = capture.find(SETTLE, |f| {
        f.len() >= 42
            && f[12..14] == [0x08, 0x06]
            && f[20..22] == [0, 1]
            && f[22..28] == mac[..]
            && f[28..32] == [198, 18, 0, 10]
            && f[38..42] == [198, 18, 0, 10]
    });
    assert!(garp.is_some(), "no gratuitous ARP for 198.18.0.10 from {lb0} on the clients' link");
}

#[test]
fn icmp_errors_are_relayed_and_expired_ttls_answered() {
    let net = TestNet::up("slb4", 1);
    // A backend port nobody listens on: the backend's kernel answers port unreachable.
    let service = "\n[[service]]\nname = \"dns\"\nvip = \"198.18.0.10:53\"\nprotocol = \"udp\"\n\
                   local_ips = [\"198.18.1.100\"]\n[[service.backend]]\naddress = \"198.18.1.2:5999\"\n";
    let sluice = Sluice::start(&net, &config(service));
    let refused = in_netns(&net.cli(), || {
        let s = UdpSocket::bind("198.18.0.2:0").unwrap();
        s.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
        s.connect("198.18.0.10:53").unwrap();
        (0..20).any(|_| {
            let _ = s.send(b"anyone?");
            matches!(s.recv(&mut [0u8; 64]), Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused)
        })
    });
    assert!(refused, "the backend's port unreachable reached the client as the VIP's:\n{}", sluice.log_text());

    // TTL 1 to the VIP: Sluice would have to forward it, so it answers time exceeded from the
    // wan address instead.
    let capture = Capture::open(&net.cli(), "cli0");
    in_netns(&net.cli(), || {
        let s = UdpSocket::bind("198.18.0.2:0").unwrap();
        s.set_ttl(1).unwrap();
        s.send_to(b"short-lived", "198.18.0.10:53").unwrap();
    });
    let exceeded = capture.find(SETTLE, |f| {
        f.len() >= 14 + 28 && f[12..14] == [0x08, 0x00] && f[23] == 1 && f[26..30] == [198, 18, 0, 1] && f[34] == 11
    });
    assert!(exceeded.is_some(), "no ICMP time exceeded from 198.18.0.1");
}

#[test]
fn a_worker_that_panics_stops_the_appliance_with_exit_1() {
    let net = TestNet::up("slb5", 1);
    let service = |b: &str| {
        format!(
            "\n[[service]]\nname = \"dns\"\nvip = \"198.18.0.10:53\"\nprotocol = \"udp\"\n\
             local_ips = [\"198.18.1.100\"]\n[[service.backend]]\naddress = \"{b}\"\n"
        )
    };
    let env = [("SLUICE_FAILPOINT", "worker-panic-on-reload")];
    let mut sluice = Sluice::start_with_env(&net.lb(), &net.name, &config(&service("198.18.1.2:53")), &env);
    // The worker panics when it takes the reloaded configuration.
    std::fs::write(
        &sluice.config,
        std::fs::read_to_string(&sluice.config)
            .unwrap()
            .replace("5353", "53")
            .replace("198.18.1.2:53", "198.18.1.2:5353"),
    )
    .unwrap();
    sluice.signal(libc::SIGHUP);
    assert_eq!(sluice.wait_exit(SETTLE), Some(1), "exit code 1:\n{}", sluice.log_text());
    let log = sluice.log_text();
    assert!(log.contains("failed; stopping"), "{log}");
    assert!(log.contains("failpoint SLUICE_FAILPOINT=worker-panic-on-reload"), "the panic is logged: {log}");
}
