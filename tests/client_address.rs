//! Backends see the real client (`client_address`), end to end through the real `sluice`
//! binary, with kernel clients and servers in namespaces (scripts/testnet):
//! - UDP with `proxy-v2`: servers that require the PROXY v2 header on every datagram name, in
//!   each answer, the client socket the datagram came from; their health checks arrive with a
//!   LOCAL header (the check expects the server's answer to one);
//! - a datagram that the header makes bigger than the link's MTU reaches the backend as two
//!   fragments when the client allows fragmentation, and makes Sluice answer ICMP
//!   fragmentation needed (MTU - 28) when it does not: the client's kernel learns that MTU;
//! - TCP with `proxy-v2`: nginx (`listen ... proxy_protocol`) and HAProxy (`accept-proxy`) answer
//!   hundreds of connections with the address and port of the client socket that made each, and
//!   pass their http checks (sent with a LOCAL header); a server that speaks first greets a
//!   client that sends nothing, also when the first send of every header is dropped on the
//!   backend link (Sluice resends it); 50 MB down from nginx and up to a hashing server arrive
//!   intact (sha256) while the backend link loses 2 % of TCP segments each way;
//! - TOA: on the backend link the client's segments carry option 254 with its port and
//!   address, the backend's SYN+ACK reaches the client with an MSS 8 lower, an option 254 the
//!   client forged is gone, and nginx serves as usual.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use common::raw::RawIp;
use common::servers::{tcp_proxy_greeter, udp_proxy_echo, Daemon};
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
    // SAFETY: the option value is a c_int of the length given, alive for the call.
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
    // SAFETY: the kernel writes at most `len` bytes into the c_int given.
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

/// A tcp `proxy-v2` service on VIP port `port` over `backends` (198.18.1.D:port), checked by
/// `check` (a `[service.health]` body) every 200 ms.
fn proxy_tcp_service(name: &str, port: u16, backends: &[u8], check: &str) -> String {
    proxy_tcp_service_to(name, port, port, backends, check)
}

/// As `proxy_tcp_service`, the backends listening on `backend_port`.
fn proxy_tcp_service_to(name: &str, port: u16, backend_port: u16, backends: &[u8], check: &str) -> String {
    let mut text = format!(
        "[[service]]\nname = \"{name}\"\nvip = \"198.18.0.10:{port}\"\nprotocol = \"tcp\"\n\
         client_address = \"proxy-v2\"\nlocal_ips = [\"198.18.1.101\"]\n[service.health]\n{check}\n\
         interval = \"200ms\"\ntimeout = \"150ms\"\nrise = 1\nfall = 1\n"
    );
    for d in backends {
        text.push_str(&format!("[[service.backend]]\naddress = \"198.18.1.{d}:{backend_port}\"\n"));
    }
    text
}

/// nginx on three backends, HAProxy on one (both checked over http), and a server that speaks
/// first on two (checked over tcp).
fn proxy_tcp_services() -> String {
    let http = "check = \"http\"\nsend = \"/health\"\nexpect = \"200\"";
    [
        proxy_tcp_service("web", 80, &[2, 3, 4], http),
        proxy_tcp_service("haproxy", 81, &[2], http),
        proxy_tcp_service("mail", 25, &[2, 3], "check = \"tcp\""),
        // The same nginx behind the SYN proxy as well: the two compose.
        proxy_tcp_service_to("web-guarded", 88, 80, &[2, 3, 4], http)
            .replace("client_address = \"proxy-v2\"\n", "client_address = \"proxy-v2\"\nsynproxy = true\n"),
    ]
    .concat()
}

/// nginx on the three backends, requiring the PROXY protocol: `/who` answers the client it
/// names, `/health` 200, `/big` the file of that name in `dir`.
fn nginx_config(dir: &std::path::Path) -> String {
    let d = dir.display();
    format!(
        r#"daemon off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{
    log_format client '$proxy_protocol_addr:$proxy_protocol_port $request_uri';
    access_log {d}/nginx-access.log client;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 198.18.1.2:80 proxy_protocol;
        listen 198.18.1.3:80 proxy_protocol;
        listen 198.18.1.4:80 proxy_protocol;
        location = /who {{ return 200 "$proxy_protocol_addr:$proxy_protocol_port"; }}
        location = /health {{ return 200 "ok\n"; }}
        location = /big {{ root {d}; }}
    }}
}}
"#
    )
}

/// HAProxy on 198.18.1.2:81, requiring the PROXY protocol: every request is answered with the
/// client it names.
fn haproxy_config(dir: &std::path::Path) -> String {
    format!(
        r#"global
    pidfile {}/haproxy.pid
defaults
    mode http
    timeout connect 5s
    timeout client 10s
    timeout server 10s
frontend who
    bind 198.18.1.2:81 accept-proxy
    http-request return status 200 content-type text/plain lf-string "%[src]:%[src_port]"
"#,
        dir.display()
    )
}

/// `count` requests to `url`, each on a connection of its own; returns the requests whose
/// answer did not name the client socket that sent them.
fn who(net: &TestNet, url: &str, count: usize) -> Vec<String> {
    let mut args =
        vec!["curl", "-sS", "--max-time", "20", "-H", "Connection: close", "-w", "|%{local_ip}:%{local_port}\n"];
    args.extend(std::iter::repeat_n(url, count));
    let out = run_in(&net.cli(), &args);
    let text = stdout(&out);
    let mut bad: Vec<String> = text
        .lines()
        .filter(|l| !l.is_empty())
        .filter(|l| l.split_once('|').is_none_or(|(named, me)| named != me))
        .map(str::to_owned)
        .collect();
    let answered = text.lines().filter(|l| l.contains('|')).count();
    if answered != count {
        bad.push(format!("{answered} answers of {count}: {}", String::from_utf8_lossy(&out.stderr)));
    }
    bad
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// Bytes that repeat rarely (a 64-bit LCG), `len` of them.
fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed;
    (0..len)
        .map(|_| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (x >> 56) as u8
        })
        .collect()
}

/// Rules in the backends' namespace: `drop_first_headers` drops the first PROXY header each
/// connection to port 25 sends (Sluice must resend it); `loss` drops that share (in %) of TCP
/// segments each way.
fn backend_link_rules(net: &TestNet, drop_first_headers: bool, loss: u32) {
    let _ = run_in(&net.srv(), &["nft", "delete", "table", "inet", "sluice_test"]);
    let mut rules = String::from(
        "table inet sluice_test {\n set seen { type ipv4_addr . inet_service; flags dynamic; size 65536; }\n",
    );
    rules.push_str(" chain input {\n  type filter hook input priority 0;\n");
    if drop_first_headers {
        rules.push_str("  tcp dport 25 @ih,0,32 0x0d0a0d0a ip saddr . tcp sport != @seen add @seen { ip saddr . tcp sport } counter drop\n");
    }
    if loss > 0 {
        rules.push_str(&format!("  meta l4proto tcp numgen random mod 100 < {loss} drop\n"));
    }
    rules.push_str(" }\n chain output {\n  type filter hook output priority 0;\n");
    if loss > 0 {
        rules.push_str(&format!("  meta l4proto tcp numgen random mod 100 < {loss} drop\n"));
    }
    rules.push_str(" }\n}\n");
    let path = write_temp("sluice-test-ctp.nft", &rules);
    let out = run_in(&net.srv(), &["nft", "-f", path.to_str().unwrap()]);
    assert!(out.status.success(), "nft: {}", String::from_utf8_lossy(&out.stderr));
}

/// Connects to `vip` from the client namespace, reads the greeting without sending anything,
/// then sends `data`, closes its side and reads the server's sha256 of what it got.
fn greet_and_upload(net: &TestNet, vip: &'static str, data: std::sync::Arc<Vec<u8>>) -> (String, String, String) {
    in_netns(&net.cli(), move || {
        let conn = TcpStream::connect_timeout(&vip.parse().unwrap(), Duration::from_secs(5)).expect("connect");
        conn.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let me = conn.local_addr().unwrap().to_string();
        let mut reader = BufReader::new(conn.try_clone().unwrap());
        let mut greeting = String::new();
        let _ = reader.read_line(&mut greeting);
        let mut writer = conn;
        let mut hash = String::new();
        if writer.write_all(&data).is_ok() && writer.shutdown(std::net::Shutdown::Write).is_ok() {
            let _ = reader.read_line(&mut hash);
        }
        (me, greeting.trim_end().to_owned(), hash.trim_end().to_owned())
    })
}

#[test]
fn tcp_backends_learn_the_client_from_nginx_to_haproxy_and_servers_that_speak_first() {
    let net = TestNet::up("ctp", 3);
    let dir = Sluice::dir("ctp-servers");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let big = pseudo_random(50 << 20, 7);
    std::fs::write(dir.join("big"), &big).unwrap();
    std::fs::write(dir.join("nginx.conf"), nginx_config(&dir)).unwrap();
    std::fs::write(dir.join("haproxy.cfg"), haproxy_config(&dir)).unwrap();
    let nginx_conf = dir.join("nginx.conf");
    let mut nginx = Daemon::start(
        &net.srv(),
        &["nginx", "-c", nginx_conf.to_str().unwrap(), "-p", dir.to_str().unwrap()],
        &dir.join("nginx.out"),
    );
    let haproxy_cfg = dir.join("haproxy.cfg");
    let mut haproxy =
        Daemon::start(&net.srv(), &["haproxy", "-db", "-f", haproxy_cfg.to_str().unwrap()], &dir.join("haproxy.out"));
    let _greeters = tcp_proxy_greeter(&net.srv(), &["198.18.1.2:25", "198.18.1.3:25"]);
    let sluice = Sluice::start(&net, &config(&proxy_tcp_services()));

    // http checks reach nginx and HAProxy only with a LOCAL header; the tcp checks send one too.
    let up =
        wait_until(Duration::from_secs(15), || metric_sum(&scrape_metrics(&net.lb()), "sluice_backend_up", &[]) >= 9.0);
    assert!(nginx.running() && haproxy.running(), "nginx or HAProxy did not start: see {}", dir.display());
    assert!(up, "backends not up: {}\n{}", scrape_metrics(&net.lb()), sluice.log_text());

    let bad = who(&net, "http://198.18.0.10/who", 300);
    assert!(bad.is_empty(), "nginx: {} of 300 wrong, first: {:?}", bad.len(), bad.first());
    // nginx's log names them too: 300 requests from 300 ports of the client namespace.
    let log = std::fs::read_to_string(dir.join("nginx-access.log")).unwrap_or_default();
    let logged: std::collections::HashSet<&str> = log
        .lines()
        .filter(|l| l.ends_with(" /who") && l.starts_with("198.18.0.2:"))
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(logged.len(), 300, "distinct clients in nginx's log:\n{log}");
    let bad = who(&net, "http://198.18.0.10:88/who", 100);
    assert!(bad.is_empty(), "nginx behind the SYN proxy: {} of 100 wrong, first: {:?}", bad.len(), bad.first());
    let bad = who(&net, "http://198.18.0.10:81/who", 100);
    assert!(bad.is_empty(), "HAProxy: {} of 100 wrong, first: {:?}", bad.len(), bad.first());

    // A server that speaks first greets a client that sends nothing, though every header's
    // first send is lost on the way: Sluice resends it.
    backend_link_rules(&net, true, 0);
    let (me, greeting, _) = greet_and_upload(&net, "198.18.0.10:25", std::sync::Arc::new(Vec::new()));
    assert_eq!(greeting, format!("220 {me}"));
    let resent = metric_sum(&scrape_metrics(&net.lb()), "sluice_client_address_total", &["result=\"resent\""]);
    assert!(resent >= 1.0, "the lost header was not resent");

    // A client that sends a PROXY header of its own at once is not believed: the server reads
    // Sluice's first, and greets the real client.
    let (me, greeting) = in_netns(&net.cli(), || {
        let mut conn = TcpStream::connect("198.18.0.10:25").expect("connect");
        conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let forged = dataplane::wire::proxy::proxy(
            dataplane::wire::proxy::Transport::Tcp,
            ("198.18.0.99".parse().unwrap(), 1),
            ("198.18.0.10".parse().unwrap(), 25),
        );
        conn.write_all(&forged).unwrap();
        let mut greeting = String::new();
        let _ = BufReader::new(conn.try_clone().unwrap()).read_line(&mut greeting);
        (conn.local_addr().unwrap().to_string(), greeting.trim_end().to_owned())
    });
    assert_eq!(greeting, format!("220 {me}"), "a forged header was believed");

    // 50 MB each way with 2 % of the backend link's TCP segments lost both ways.
    backend_link_rules(&net, false, 2);
    let down = dir.join("down");
    let out = run_in(
        &net.cli(),
        &["curl", "-sS", "--max-time", "120", "-o", down.to_str().unwrap(), "http://198.18.0.10/big"],
    );
    assert!(out.status.success(), "download: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(sha256_hex(&std::fs::read(&down).unwrap()), sha256_hex(&big), "50 MB down from nginx");
    let up_data = std::sync::Arc::new(pseudo_random(50 << 20, 11));
    let (me, greeting, hash) = greet_and_upload(&net, "198.18.0.10:25", up_data.clone());
    assert_eq!(greeting, format!("220 {me}"));
    assert_eq!(hash, sha256_hex(&up_data), "50 MB up to the hashing server");

    let m = scrape_metrics(&net.lb());
    let count = |result: &str| metric_sum(&m, "sluice_client_address_total", &[&format!("result=\"{result}\"")]);
    assert!(count("added") >= 400.0, "added: {}", count("added"));
    assert_eq!(count("reset"), 0.0);
    let _ = std::fs::remove_dir_all(&dir);
}

const TOA: &str = r#"
[[service]]
name = "web"
vip = "198.18.0.10:8080"
protocol = "tcp"
client_address = "toa"
local_ips = ["198.18.1.101"]
[[service.backend]]
address = "198.18.1.2:8080"
"#;

/// The TCP options of an Ethernet frame carrying IPv4 TCP from `src` to `dst` port `port`
/// with `flags` (exactly), if it is one.
fn tcp_options(frame: &[u8], src: [u8; 4], port: u16, flags: u8) -> Option<Vec<u8>> {
    let ip = frame.get(14..)?;
    if frame.get(12..14)? != [8, 0] || ip[9] != 6 || ip[12..16] != src {
        return None;
    }
    let tcp = ip.get(usize::from(ip[0] & 0x0f) * 4..)?;
    let ports_match = u16::from_be_bytes([tcp[2], tcp[3]]) == port || u16::from_be_bytes([tcp[0], tcp[1]]) == port;
    (ports_match && tcp[13] == flags).then(|| tcp[20..usize::from(tcp[12] >> 4) * 4].to_vec())
}

#[test]
fn toa_tells_the_backend_the_client_in_an_option_and_forged_ones_never_pass() {
    let net = TestNet::up("cto", 3);
    let dir = Sluice::dir("cto-servers");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let conf = nginx_config(&dir).replace(" proxy_protocol;", ";").replace(":80", ":8080");
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    let nginx_conf = dir.join("nginx.conf");
    let mut nginx = Daemon::start(
        &net.srv(),
        &["nginx", "-c", nginx_conf.to_str().unwrap(), "-p", dir.to_str().unwrap()],
        &dir.join("nginx.out"),
    );
    let sluice = Sluice::start(&net, &config(TOA));
    let backend_link = Capture::open(&net.srv(), "srv0");
    let client_link = Capture::open(&net.cli(), "cli0");

    // nginx serves as usual (the first request also waits for ARP: tried a few times).
    let mut served = None;
    for _ in 0..10 {
        let out = run_in(
            &net.cli(),
            &["curl", "-sS", "--max-time", "2", "-w", "|%{local_port}", "http://198.18.0.10:8080/health"],
        );
        if out.status.success() {
            served = Some(stdout(&out));
            break;
        }
    }
    assert!(nginx.running(), "nginx did not start: see {}", dir.display());
    let served = served.unwrap_or_else(|| panic!("no answer through the VIP\n{}", sluice.log_text()));
    let (body, port) = served.split_once('|').unwrap();
    assert_eq!(body, "ok\n");
    let port: u16 = port.parse().unwrap();

    // The handshake's ACK towards the backend carries option 254: the client's port and address.
    let ack = backend_link.find(Duration::from_secs(3), |f| tcp_options(f, [198, 18, 1, 101], 8080, 0x10).is_some());
    let options =
        tcp_options(&ack.expect("the client's ACK on the backend link"), [198, 18, 1, 101], 8080, 0x10).unwrap();
    let p = port.to_be_bytes();
    assert_eq!(&options[..8], &[254, 8, p[0], p[1], 198, 18, 0, 2], "TOA first among the options: {options:?}");

    // The client saw the backend's MSS less 8 (nginx's kernel offers 1460 on this link).
    let syn_ack = client_link.find(Duration::from_secs(1), |f| tcp_options(f, [198, 18, 0, 10], 8080, 0x12).is_some());
    let options = tcp_options(&syn_ack.expect("the SYN+ACK on the client link"), [198, 18, 0, 10], 8080, 0x12).unwrap();
    assert_eq!(&options[..4], &[2, 4, 0x05, 0xac], "MSS 1452: {options:?}");

    // A SYN with a forged option 254 leaves for the backend without it.
    let forged_port = 40404u16;
    let tcp = dataplane::wire::tcp::Repr {
        src_port: forged_port,
        dst_port: 8080,
        seq: 1,
        ack: 0,
        flags: dataplane::wire::tcp::Flags::SYN,
        window: 1024,
        options: &[2, 4, 5, 180, 254, 8, 0, 1, 198, 18, 0, 99],
        payload: &[],
    };
    let (src, dst) = ("198.18.0.2".parse().unwrap(), "198.18.0.10".parse().unwrap());
    let mut packet = vec![0u8; 20 + tcp.buffer_len()];
    dataplane::wire::ipv4::Repr { src, dst, protocol: 6, ttl: 64, payload_len: tcp.buffer_len() }.emit(&mut packet);
    tcp.emit(&mut packet[20..], src, dst);
    assert!(RawIp::open(&net.cli()).send(&packet));
    let syn = backend_link.find(Duration::from_secs(3), |f| {
        tcp_options(f, [198, 18, 1, 101], 8080, 0x02).is_some() && f.len() > 34 + 20 && f[34..].len() >= 28
    });
    let options =
        tcp_options(&syn.expect("the forged SYN on the backend link"), [198, 18, 1, 101], 8080, 0x02).unwrap();
    assert!(!options.windows(2).any(|w| w == [254, 8]), "a forged option 254 reached the backend: {options:?}");

    let m = scrape_metrics(&net.lb());
    assert!(metric_sum(&m, "sluice_client_address_total", &["service=\"web\"", "result=\"added\""]) >= 1.0);
    let _ = std::fs::remove_dir_all(&dir);
}
