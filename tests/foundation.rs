//! The foundation, end to end through the real `sluice` binary over af_packet ports in network
//! namespaces (scripts/testnet): the kernel exception path answers ping and carries a TCP
//! exchange for the host's own address; the data path answers ARP for a VIP with the port's
//! MAC; an invalid config is refused with FILE:LINE:COL; SIGTERM stops Sluice with exit 0 and
//! leaves neither the kernel interfaces it made nor its API socket behind.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::process::Command;
use std::time::Duration;

use common::*;

#[test]
fn exception_path_arp_and_clean_shutdown() {
    let net = TestNet::up("slf", 1);
    let mut sluice = Sluice::start(&net, &config(ONE_UDP_SERVICE));

    // The control thread (the process's main thread) runs on `[cpu] control` = 0 alone: the
    // EAL pins it there as lcore 0 (`--lcores 0@0`).
    let status = std::fs::read_to_string(format!("/proc/{}/status", sluice.pid())).unwrap();
    let allowed = status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")).map(str::trim);
    assert_eq!(allowed, Some("0"), "control thread's CPUs");

    // Ping of the wan address: answered by the kernel through the tap behind the port.
    let ping_ok = || run_in(&net.cli(), &["ping", "-c1", "-W1", "198.18.0.1"]).status.success();
    assert!(wait_until(Duration::from_secs(15), ping_ok), "no ping reply from 198.18.0.1:\n{}", sluice.log_text());
    let out = run_in(&net.cli(), &["ping", "-c5", "-i0.2", "-W2", "198.18.0.1"]);
    assert!(stdout(&out).contains("5 received"), "ping lost replies: {}", stdout(&out));

    // A TCP exchange with a listener in the balancer's namespace, on the wan address.
    let listener = in_netns(&net.lb(), || TcpListener::bind("198.18.0.1:8080").expect("bind in lb namespace"));
    let server = std::thread::spawn(move || {
        let (mut conn, peer) = listener.accept().expect("accept");
        let mut buf = [0u8; 5];
        conn.read_exact(&mut buf).expect("read request");
        conn.write_all(format!("{} from {}", String::from_utf8_lossy(&buf), peer.ip()).as_bytes()).expect("reply");
    });
    let reply = in_netns(&net.cli(), || {
        let mut conn = TcpStream::connect_timeout(&"198.18.0.1:8080".parse().unwrap(), Duration::from_secs(5))
            .expect("connect to 198.18.0.1:8080");
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        conn.write_all(b"hello").unwrap();
        let mut reply = String::new();
        conn.read_to_string(&mut reply).expect("read reply");
        reply
    });
    server.join().expect("server thread");
    assert_eq!(reply, "hello from 198.18.0.2");

    // ARP for the VIP: answered by the data path with the port's MAC (also the tap's).
    let lb0_mac = stdout(&run_in(&net.lb(), &["cat", "/sys/class/net/lb0/address"])).trim().to_owned();
    let wan_mac = stdout(&run_in(&net.lb(), &["cat", "/sys/class/net/wan/address"])).trim().to_owned();
    assert_eq!(wan_mac, lb0_mac, "the kernel interface carries the port's MAC");
    let vip_mac = || {
        let _ =
            in_netns(&net.cli(), || UdpSocket::bind("198.18.0.2:0").and_then(|s| s.send_to(b"?", "198.18.0.10:53")));
        let neigh = stdout(&run_in(&net.cli(), &["ip", "neigh", "show", "198.18.0.10", "dev", "cli0"]));
        neigh.contains(&format!("lladdr {lb0_mac}"))
    };
    assert!(wait_until(Duration::from_secs(10), vip_mac), "no ARP answer for the VIP:\n{}", sluice.log_text());

    // Clean shutdown: exit 0, the kernel interfaces it created and its API socket are gone.
    assert!(sluice.socket.exists(), "the API socket while running");
    assert_eq!(sluice.stop(Duration::from_secs(15)), Some(0), "exit code; log:\n{}", sluice.log_text());
    for iface in ["wan", "lan"] {
        let out = run_in(&net.lb(), &["ip", "link", "show", iface]);
        assert!(!out.status.success(), "kernel interface {iface} left behind");
    }
    assert!(!sluice.socket.exists(), "API socket {} left behind", sluice.socket.display());
}

#[test]
fn invalid_config_is_refused_with_its_position() {
    let bad = config(ONE_UDP_SERVICE).replace("protocol = \"udp\"", "protocol = \"sctp\"");
    let line = bad.lines().position(|l| l.contains("sctp")).unwrap() + 1;
    let path = write_temp("sluice-invalid.toml", &bad);
    let path = path.to_str().unwrap();

    for flag in ["--check-config", "--config"] {
        let out = Command::new(sluice_bin()).args([flag, path]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag}: {stderr}");
        let expected = format!("{path}:{line}:12: ");
        assert!(stderr.lines().any(|l| l.starts_with(&expected) && l.contains("sctp")), "{flag}: {stderr}");
    }
}

#[test]
fn shipped_configs_are_valid() {
    for file in ["conf/demo.toml", "conf/example.toml"] {
        let out =
            Command::new(sluice_bin()).args(["--check-config", repo().join(file).to_str().unwrap()]).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{file}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

#[test]
fn a_session_table_the_machine_cannot_hold_is_refused_at_start() {
    // Valid for --check-config (the largest table there is), too big for this machine's memory:
    // refused at start with a message, before DPDK or any allocation.
    let text = config(ONE_UDP_SERVICE) + "\n[sessions]\ncapacity = 268435456\n";
    let path = write_temp("sluice-huge-table.toml", &text);
    let path = path.to_str().unwrap();
    let out = Command::new(sluice_bin()).args(["--check-config", path]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let out = Command::new(sluice_bin()).args(["--config", path]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("[sessions] capacity 268435456 for 1 worker(s) needs about"), "{stderr}");
    assert!(!stderr.contains("EAL"), "refused before DPDK started: {stderr}");
}
