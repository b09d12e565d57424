//! Session sync in a cluster behind ECMP (`scripts/clusternet`): 200 long-lived TCP
//! connections spread over two nodes go on, with no reset and no long stall, when one node is
//! killed (its sessions live on in the other, which takes over its local IP through its backup
//! announcement) and when it comes back (it takes the table before it announces anything);
//! UDP flows keep their backend; without sync the same death breaks connections.

mod common;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use common::cluster::{
    capture_udp, node_address, resets, spoof_udp, sync_config, ClusterNet, LongLived, UdpFlows, VIP,
};
use common::{servers, wait_until, Sluice};

const BACKENDS: u32 = 3;

fn both() -> Vec<Ipv4Addr> {
    vec![node_address(1), node_address(2)]
}

fn await_hops(net: &ClusterNet, hops: &[Ipv4Addr], within: Duration) {
    let ok = wait_until(within, || net.next_hops(VIP) == hops);
    assert!(ok, "the router's next hops for {VIP} stayed {:?}, expected {hops:?}", net.next_hops(VIP));
}

fn echo_backends(net: &ClusterNet) -> (servers::Servers, servers::Servers) {
    let tcp: Vec<String> = (0..BACKENDS).map(|i| format!("198.18.1.{}:9000", 2 + i)).collect();
    let udp: Vec<String> = (0..BACKENDS).map(|i| format!("198.18.1.{}:9001", 2 + i)).collect();
    (
        servers::tcp_echo(&net.srv(), &tcp.iter().map(String::as_str).collect::<Vec<_>>()),
        servers::udp_named_echo(&net.srv(), &udp.iter().map(String::as_str).collect::<Vec<_>>()),
    )
}

/// Copies of the other node's sessions that `node` holds.
fn held(node: &Sluice) -> u64 {
    let status = node.ctl_json(&["status"]);
    status["cluster"]["peers"].as_array().into_iter().flatten().map(|p| p["sessions_held"].as_u64().unwrap_or(0)).sum()
}

fn packets(node: &Sluice) -> u64 {
    common::cluster::packets_to_backends(node)
}

/// Node 1's counters of its peer: messages and records taken, and drops by reason.
fn peer_counters(node: &Sluice) -> (u64, u64, Vec<(String, u64)>) {
    let status = node.ctl_json(&["status"]);
    let peer = &status["cluster"]["peers"][0];
    let dropped = peer["dropped"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| (d[0].as_str().unwrap_or("").to_owned(), d[1].as_u64().unwrap_or(0)))
        .collect();
    (peer["messages_in"].as_u64().unwrap_or(0), peer["records_in"].as_u64().unwrap_or(0), dropped)
}

fn dropped(counters: &(u64, u64, Vec<(String, u64)>), reason: &str) -> u64 {
    counters.2.iter().find(|(r, _)| r == reason).map_or(0, |(_, n)| *n)
}

/// From the router's namespace, as node 2 (its address, a transparent socket): a hello of node
/// 2's captured on the wire and sent again, and a message made with another key. Node 1 takes
/// neither, and counts both.
fn forgeries_change_nothing(net: &ClusterNet, n1: &Sluice) {
    let (from, to) = (SocketAddrV4::new(node_address(2), 8849), SocketAddrV4::new(node_address(1), 8849));
    let hello = capture_udp(&net.router(), "n2", from, to, |p| p.len() > 5 && &p[..4] == b"SLSY" && p[5] == 1)
        .expect("a hello from node 2 on the wire");
    let mut forged = hello.clone();
    let n = forged.len();
    forged[n - 1] ^= 0x55; // the MAC no longer fits: as made with another key
    let before = peer_counters(n1);
    spoof_udp(&net.router(), from, to, hello);
    spoof_udp(&net.router(), from, to, forged);
    let counted = wait_until(Duration::from_secs(5), || {
        let now = peer_counters(n1);
        dropped(&now, "replay") > dropped(&before, "replay") && dropped(&now, "bad_mac") > dropped(&before, "bad_mac")
    });
    assert!(counted, "the replay and the forgery are counted: {:?}", peer_counters(n1));
    let text = n1.ctl(&["status"]).1;
    assert!(text.contains("replay 1") && text.contains("bad_mac 1"), "{text}");
    let metrics = common::stdout(&common::run_in(&net.node(1), &["curl", "-s", "http://127.0.0.1:9273/metrics"]));
    assert!(metrics.contains("sluice_sync_dropped_total{peer=\"198.18.0.12\",reason=\"replay\"} 1"), "{metrics}");
    assert!(metrics.contains("sluice_cluster_peer_up{peer=\"198.18.0.12\"} 1"), "{metrics}");
}

#[test]
fn connections_survive_a_node_death_and_its_return() {
    let net = ClusterNet::up("csa", 2, BACKENDS);
    let _echo = echo_backends(&net);
    let n1 = net.start_node(1, &sync_config(&net, 1, BACKENDS, true));
    let n2 = net.start_node(2, &sync_config(&net, 2, BACKENDS, true));
    await_hops(&net, &both(), Duration::from_secs(30));

    let target: SocketAddr = format!("{VIP}:9000").parse().unwrap();
    let client = LongLived::start(&net.cli(), target, 200, Duration::from_millis(50));
    let udp = UdpFlows::open(&net.cli(), format!("{VIP}:9001").parse().unwrap(), 50);
    let udp_before = udp.backends();
    assert!(udp_before.iter().all(Option::is_some), "every UDP flow answered: {udp_before:?}");
    assert!(client.wait_each_echoed(10, Duration::from_secs(30)), "{:?}", client.report());
    let r = client.report();
    assert!(r.errors.is_empty() && r.open == 200, "{r:?}");
    let (p1, p2) = (packets(&n1), packets(&n2));
    assert!(p1 > 0 && p2 > 0, "both nodes carry connections: {p1} and {p2} packets");
    assert!(wait_until(Duration::from_secs(5), || held(&n2) > 0 && held(&n1) > 0), "each holds the other's sessions");
    let before = (resets(&net.cli()), resets(&net.srv()));
    forgeries_change_nothing(&net, &n1);

    // Node 1 dies. Its flows come to node 2, which forwards them from node 1's local IP; the
    // router sends the backends' replies to node 2 by its backup announcement of that IP.
    let mut n1 = n1;
    n1.kill();
    await_hops(&net, &[node_address(2)], Duration::from_secs(5));
    // Every connection echoes 20 more lines (a second at 50 ms): none is left behind.
    let going = client.wait_each_echoed(20, Duration::from_secs(10));
    let r = client.report();
    assert!(going, "not every connection went on after node 1 died (longest wait {:?})", r.longest);
    assert!(
        r.errors.is_empty(),
        "{} errors after node 1 died: {:?}",
        r.errors.len(),
        &r.errors[..r.errors.len().min(5)]
    );
    eprintln!("node 1 killed: longest wait for an echo {:?}", r.longest);
    assert!(r.longest < Duration::from_secs(3), "a connection stalled {:?}", r.longest);
    assert_eq!(udp.backends(), udp_before, "UDP flows keep their backend after node 1 died");

    // Node 1 comes back: it takes node 2's table (its own old sessions among them) before it
    // announces anything, then carries flows again.
    let n1 = net.start_node(1, &sync_config(&net, 1, BACKENDS, true));
    await_hops(&net, &both(), Duration::from_secs(30));
    let carried = packets(&n1);
    let going = client.wait_each_echoed(20, Duration::from_secs(10));
    assert!(going, "not every connection went on after node 1 came back: {:?}", client.report().longest);
    assert!(packets(&n1) > carried, "the returned node carries flows");
    assert_eq!(udp.backends(), udp_before, "UDP flows keep their backend after node 1 came back");
    let log = n1.log_text();
    assert!(log.contains("received the whole table of peer 198.18.0.12"), "{log}");

    let after = (resets(&net.cli()), resets(&net.srv()));
    let r = client.finish();
    eprintln!("node 1 back: longest wait for an echo over the whole test {:?}, {} echoes", r.longest, r.echoed);
    assert!(r.errors.is_empty(), "{} errors: {:?}", r.errors.len(), &r.errors[..r.errors.len().min(5)]);
    assert!(r.longest < Duration::from_secs(3), "a connection stalled {:?}", r.longest);
    assert_eq!(r.moved, 0, "every connection kept its backend");
    assert_eq!(before, after, "no reset in the clients' or the backends' kernels (EstabResets, OutRsts)");
    drop(n2);
}

/// The same death without `[cluster]`: the connections node 1 carried stop (their packets
/// reach node 2, which knows nothing of them), which shows the test above can fail.
#[test]
fn without_sync_a_node_death_stops_its_connections() {
    let net = ClusterNet::up("csb", 2, BACKENDS);
    let _echo = echo_backends(&net);
    let mut n1 = net.start_node(1, &sync_config(&net, 1, BACKENDS, false));
    let n2 = net.start_node(2, &sync_config(&net, 2, BACKENDS, false));
    await_hops(&net, &both(), Duration::from_secs(30));
    let target: SocketAddr = format!("{VIP}:9000").parse().unwrap();
    let client = LongLived::start(&net.cli(), target, 200, Duration::from_millis(50));
    assert!(client.wait_each_echoed(10, Duration::from_secs(30)), "{:?}", client.report());
    assert!(packets(&n1) > 0 && packets(&n2) > 0);
    n1.kill();
    await_hops(&net, &[node_address(2)], Duration::from_secs(5));
    assert!(!client.wait_each_echoed(20, Duration::from_secs(5)), "connections of the dead node went on without sync");
    let r = client.finish();
    assert!(r.longest >= Duration::from_secs(3) || !r.errors.is_empty(), "{r:?}");
    drop(n2);
}

/// Directors that are also real servers (the LVS-DR + keepalived setup that bounced packets
/// between two such nodes forever): each node's own host address is a backend of a per-datagram
/// UDP service on both nodes, served by its kernel. Every datagram reaches one backend once and
/// its answer comes back once.
#[test]
fn directors_that_are_also_backends_forward_each_packet_once() {
    let net = ClusterNet::up("csc", 2, 1);
    let colo = |k| {
        sync_config(&net, k, 1, true)
            + "\n[[service]]\nname = \"colo\"\nvip = \"198.18.10.10:7000\"\nprotocol = \"udp\"\nper_packet = true\n\
               local_ips = [\"198.18.12." + &k.to_string() + "\"]\n\
               [[service.backend]]\naddress = \"198.18.0.11:7000\"\n[[service.backend]]\naddress = \"198.18.0.12:7000\"\n"
    };
    let n1 = net.start_node(1, &colo(1));
    let n2 = net.start_node(2, &colo(2));
    // On the addresses of the kernel interfaces Sluice made.
    let in1 = servers::udp_named_echo(&net.node(1), &["198.18.0.11:7000"]);
    let in2 = servers::udp_named_echo(&net.node(2), &["198.18.0.12:7000"]);
    await_hops(&net, &both(), Duration::from_secs(30));

    let flows = UdpFlows::open(&net.cli(), format!("{VIP}:7000").parse().unwrap(), 40);
    let (sent, answered) = flows.exchange(50);
    assert_eq!(answered, sent, "every datagram answered once");
    let (a, b) = (in1.total(), in2.total());
    eprintln!("{sent} datagrams: node 1's kernel served {a}, node 2's {b}");
    assert_eq!(a + b, sent, "the backends saw exactly what the clients sent: no packet went round twice");
    assert!(a > 0 && b > 0, "both hosts served: {a} and {b}");
    assert!(packets(&n1) > 0 && packets(&n2) > 0);
}
