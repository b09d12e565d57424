//! Backends see the real client (`client_address`), end to end through the real `sluice`
//! binary, with kernel clients and servers in namespaces (scripts/testnet):
//! - UDP with `proxy-v2`: servers that require the PROXY v2 header on every datagram name, in
//!   each answer, the client socket the datagram came from; their health checks arrive with a
//!   LOCAL header (the check expects the server's answer to one);
//! - a datagram that the header makes bigger than the link's MTU reaches the backend as two
//!   fragments when the client allows fragmentation, and makes Sluice answer ICMP
//!   fragmentation needed (MTU - 28) when it does not: the client's kernel learns that MTU.

mod common;

use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use common::servers::udp_proxy_echo;
use common::*;

const PROXY_UDP: &str = r#"
[[service]]
name = "dns"
vip = "198.18.0.10:53"
protocol = "udp"
scheduler = "rr"
client_address = "proxy-v2"
local_ips = ["198.18.1.100"]
[service.health]
check = "udp"
interval = "200ms"
timeout = "150ms"
rise = 1
fall = 1
send = "ping"
expect = "local ping"
[[service.backend]]
address = "198.18.1.2:53"
[[service.backend]]
address = "198.18.1.3:53"
[[service.backend]]
address = "198.18.1.4:53"
"#;

const BACKENDS: [&str; 3] = ["198.18.1.2:53", "198.18.1.3:53", "198.18.1.4:53"];
const VIP: &str = "198.18.0.10:53";

/// Sets the socket's path MTU discovery mode (`IP_PMTUDISC_*`).
fn pmtu_mode(s: &UdpSocket, mode: libc::c_int) {
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            &mode as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "IP_MTU_DISCOVER: {}", std::io::Error::last_os_error());
}

/// The path MTU the kernel knows for a connected socket's destination.
fn path_mtu(s: &UdpSocket) -> i32 {
    let mut mtu: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    let rc = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_MTU,
            &mut mtu as *mut _ as *mut libc::c_void,
            &mut len,
        )
    };
    assert_eq!(rc, 0, "IP_MTU: {}", std::io::Error::last_os_error());
    mtu
}

#[test]
fn udp_backends_learn_every_datagrams_client_and_checks_say_local() {
    let net = TestNet::up("sca", 3);
    let _servers = udp_proxy_echo(&net.srv(), &BACKENDS);
    let sluice = Sluice::start(&net, &config(PROXY_UDP));

    // The servers answer "local ping" only to a check that came with a LOCAL header.
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric_sum(&scrape_metrics(&net.lb()), "sluice_backend_up", &[]) < 3.0 {
        assert!(Instant::now() < deadline, "backends not up: checks without a LOCAL header?\n{}", sluice.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }

    // 20 client sockets, 5 datagrams each: every answer names the socket it came from.
    let bad = in_netns(&net.cli(), || {
        let mut bad = Vec::new();
        let sockets: Vec<UdpSocket> = (0..20).map(|_| UdpSocket::bind("198.18.0.2:0").unwrap()).collect();
        for (c, s) in sockets.iter().enumerate() {
            s.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
            let me = s.local_addr().unwrap();
            for i in 0..5 {
                let payload = format!("client {c} datagram {i}");
                let expected = format!("{me} {payload}");
                // The first datagrams also wait for ARP: a lost one is sent again (3 tries).
                let answer = (0..3).find_map(|_| {
                    s.send_to(payload.as_bytes(), VIP).unwrap();
                    let mut buf = [0u8; 256];
                    s.recv_from(&mut buf).ok().map(|(n, from)| (String::from_utf8_lossy(&buf[..n]).into_owned(), from))
                });
                match answer {
                    Some((text, from)) if text == expected && from.to_string() == VIP => {}
                    other => bad.push(format!("{expected}: {other:?}")),
                }
            }
        }
        bad
    });
    assert!(bad.is_empty(), "{} wrong or missing answers, first: {:?}", bad.len(), bad.first());

    // 1472 bytes of payload fill a 1500-byte packet: with the header it needs two fragments.
    let (me, answer) = in_netns(&net.cli(), || {
        let s = UdpSocket::bind("198.18.0.2:0").unwrap();
        pmtu_mode(&s, libc::IP_PMTUDISC_DONT);
        s.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
        let answer = (0..3).find_map(|_| {
            s.send_to(&[b'x'; 1472], VIP).unwrap();
            let mut buf = [0u8; 256];
            s.recv_from(&mut buf).ok().map(|(n, _)| String::from_utf8_lossy(&buf[..n]).into_owned())
        });
        (s.local_addr().unwrap(), answer)
    });
    assert_eq!(answer, Some(format!("{me} 1472 bytes")), "a fragmented datagram reassembled at the backend");

    // The same with DF: Sluice tells the client the MTU that leaves room for the header.
    let learned = in_netns(&net.cli(), || {
        let s = UdpSocket::bind("198.18.0.2:0").unwrap();
        s.connect(VIP).unwrap();
        pmtu_mode(&s, libc::IP_PMTUDISC_DO);
        let deadline = Instant::now() + Duration::from_secs(5);
        while path_mtu(&s) != 1472 && Instant::now() < deadline {
            let _ = s.send(&[b'y'; 1472]); // EMSGSIZE once the kernel knows
            std::thread::sleep(Duration::from_millis(100));
        }
        path_mtu(&s)
    });
    assert_eq!(learned, 1472, "the client's kernel learned MTU 1500 - 28 from Sluice's ICMP");

    let m = scrape_metrics(&net.lb());
    let count = |result: &str| {
        metric_sum(&m, "sluice_client_address_total", &["service=\"dns\"", &format!("result=\"{result}\"")])
    };
    assert!(count("added") >= 100.0, "added: {}", count("added"));
    assert!(count("fragmented") >= 1.0, "fragmented: {}", count("fragmented"));
    assert!(count("too_big") >= 1.0, "too_big: {}", count("too_big"));
    assert_eq!(count("no_room"), 0.0);
    assert!(metric_sum(&m, "sluice_packets_dropped_total", &["reason=\"too_big\""]) >= 1.0);
}
