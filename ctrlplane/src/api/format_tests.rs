//! What `sluicectl` prints for each reply: aligned columns, and `--json` as the document.

use serde_json::json;

use super::format::{self, duration};
use super::{
    BackendAction, BackendStatus, BgpStatus, ClusterStatus, NeighborStatus, PeerStatus, PortStatus, Rates,
    ReloadReport, Request, RouteStatus, ServiceStatus, SessionRow, Status, WorkerStatus,
};

fn backend(address: &str, weight: u32, state: &str, packets: u64) -> BackendStatus {
    BackendStatus {
        address: address.into(),
        weight,
        state: state.into(),
        active_sessions: packets / 10,
        packets_to_backend: packets,
        packets_from_backend: packets / 2,
        bytes_to_backend: packets * 64,
        bytes_from_backend: packets * 32,
        connections: packets / 4,
        rates: Rates {
            connections: packets as f64 / 40.0,
            packets_to_backend: packets as f64 / 10.0,
            packets_from_backend: packets as f64 / 20.0,
            bytes_to_backend: packets as f64 * 6.4,
            bytes_from_backend: packets as f64 * 3.2,
        },
    }
}

fn services() -> Vec<ServiceStatus> {
    vec![
        ServiceStatus {
            name: "dns".into(),
            protocol: "udp".into(),
            vip: "198.18.0.10:53".into(),
            scheduler: "rr".into(),
            per_packet: true,
            backends: vec![backend("198.18.1.2:5353", 1, "up", 1200), backend("198.18.1.3:5353", 1, "down", 0)],
        },
        ServiceStatus {
            name: "web".into(),
            protocol: "tcp".into(),
            vip: "198.18.0.11:80".into(),
            scheduler: "wrr".into(),
            per_packet: false,
            backends: vec![backend("198.18.1.10:8080", 65535, "draining", 98765432)],
        },
        ServiceStatus {
            name: "empty".into(),
            protocol: "tcp".into(),
            vip: "198.18.0.12:443".into(),
            scheduler: "maglev".into(),
            per_packet: false,
            backends: vec![],
        },
    ]
}

#[test]
fn services_print_one_block_per_service_with_aligned_columns() {
    let expected = "\
PROT VIP SCHEDULER [FLAGS] (SERVICE)    WEIGHT  STATE     ACTIVECONN     CONNS    INPKTS   OUTPKTS     INBYTES    OUTBYTES      CPS    INPPS   OUTPPS      INBPS     OUTBPS
  -> BACKEND
UDP 198.18.0.10:53 rr per_packet (dns)                           120       300      1200       600       76800       38400       30      120       60       7680       3840
  -> 198.18.1.2:5353                         1  up               120       300      1200       600       76800       38400       30      120       60       7680       3840
  -> 198.18.1.3:5353                         1  down               0         0         0         0           0           0        0        0        0          0          0
TCP 198.18.0.11:80 wrr (web)                                 9876543  24691358  98765432  49382716  6320987648  3160493824  2469136  9876543  4938272  632098765  316049382
  -> 198.18.1.10:8080                    65535  draining     9876543  24691358  98765432  49382716  6320987648  3160493824  2469136  9876543  4938272  632098765  316049382
TCP 198.18.0.12:443 maglev (empty)                                 0         0         0         0           0           0        0        0        0          0          0
  (no backends)
";
    assert_eq!(format::services(&services()), expected);
    assert_eq!(format::services(&[]), "no services\n");
}

#[test]
fn status_prints_a_summary_then_workers_and_ports() {
    let status = Status {
        version: "0.1.0 (commit abc)".into(),
        uptime_seconds: 93_784,
        workers: vec![
            WorkerStatus { id: 0, cpu: 1, busy_ratio: 0.125 },
            WorkerStatus { id: 1, cpu: 12, busy_ratio: 1.0 },
        ],
        ports: vec![PortStatus {
            name: "wan".into(),
            device: "net_af_packet0".into(),
            driver: "net_af_packet".into(),
            steering: "redirect".into(),
            rx_pps: 1500.4,
            tx_pps: 0.0,
            rx_packets: 123456,
            tx_packets: 7,
            dropped: 0,
        }],
        sessions: 42,
        bgp: None,
        cluster: None,
    };
    let expected = "\
sluice 0.1.0 (commit abc), up 1d02h03m, 42 sessions

WORKER  CPU    BUSY
     0    1   12.5%
     1   12  100.0%

PORT  DEVICE          DRIVER         STEERING  RX_PPS  TX_PPS  RX_PACKETS  TX_PACKETS  DROPPED
wan   net_af_packet0  net_af_packet  redirect    1500       0      123456           7        0
";
    assert_eq!(format::status(&status), expected);
}

#[test]
fn sessions_print_one_row_each() {
    let row = |client: &str, age| SessionRow {
        service: "dns".into(),
        client: client.into(),
        vip: "198.18.0.10:53".into(),
        local: "198.18.1.100:1024".into(),
        backend: "198.18.1.2:5353".into(),
        state: "udp".into(),
        age_seconds: age,
    };
    let expected = "\
SERVICE  CLIENT              VIP             LOCAL              BACKEND          STATE    AGE
dns      198.18.0.2:40000    198.18.0.10:53  198.18.1.100:1024  198.18.1.2:5353  udp       4s
dns      198.18.0.200:65535  198.18.0.10:53  198.18.1.100:1024  198.18.1.2:5353  udp    1m05s
";
    assert_eq!(format::sessions(&[row("198.18.0.2:40000", 4), row("198.18.0.200:65535", 65)]), expected);
    assert_eq!(format::sessions(&[]), "no sessions\n");
}

#[test]
fn reload_says_what_changed_or_why_nothing_did() {
    let changed = ReloadReport { changed: true, changes: vec!["service dns: backend 198.18.1.4:53 added".into()] };
    assert_eq!(format::reload(&changed), "reloaded, changes:\n  service dns: backend 198.18.1.4:53 added\n");
    let same = ReloadReport { changed: false, changes: vec!["the config file is unchanged".into()] };
    assert_eq!(format::reload(&same), "nothing changed\n  the config file is unchanged\n");
}

#[test]
fn render_picks_the_document_by_command() {
    let request = Request::Backend {
        service: "dns".into(),
        address: "198.18.1.2:5353".parse().unwrap(),
        action: BackendAction::Weight(3),
    };
    let data = serde_json::to_value(backend("198.18.1.2:5353", 3, "up", 10)).unwrap();
    assert_eq!(
        format::render(&request, &data, false).unwrap(),
        "service dns:\n\
         BACKEND          WEIGHT  STATE  ACTIVECONN  CONNS  INPKTS  OUTPKTS  INBYTES  OUTBYTES  CPS  INPPS  OUTPPS  INBPS  OUTBPS\n\
         198.18.1.2:5353       3  up              1      2      10        5      640       320    0      1       0     64      32\n"
    );
    assert_eq!(format::render(&request, &json!(null), false).unwrap(), "done\n");
    assert_eq!(format::render(&Request::Services, &json!([]), true).unwrap(), "[]\n");
    assert_eq!(format::render(&Request::Status, &json!({"sessions": 1}), true).unwrap(), "{\n  \"sessions\": 1\n}\n");
    let err = format::render(&Request::Status, &json!({"sessions": 1}), false).unwrap_err();
    assert!(err.starts_with("unexpected reply from the daemon: missing field"), "{err}");
}

#[test]
fn durations_read_as_people_say_them() {
    assert_eq!(duration(0), "0s");
    assert_eq!(duration(59), "59s");
    assert_eq!(duration(60), "1m00s");
    assert_eq!(duration(3_599), "59m59s");
    assert_eq!(duration(3_600), "1h00m00s");
    assert_eq!(duration(86_400 * 3 + 3_660), "3d01h01m");
}

#[test]
fn bgp_shows_neighbours_and_every_route_with_why_it_is_withdrawn() {
    let route = |prefix: &str, kind: &str, withdrawn: Option<&str>| RouteStatus {
        prefix: prefix.into(),
        kind: kind.into(),
        announced: withdrawn.is_none(),
        withdrawn: withdrawn.map(String::from),
    };
    let bgp = BgpStatus {
        local_as: 65001,
        router_id: "198.18.0.11".into(),
        bird: "running".into(),
        bird_restarts: 1,
        drained: true,
        neighbors: vec![
            NeighborStatus {
                address: "198.18.0.254".into(),
                remote_as: 65000,
                up: true,
                state: "up".into(),
                info: "Established".into(),
            },
            NeighborStatus {
                address: "198.18.0.253".into(),
                remote_as: 65000,
                up: false,
                state: "start".into(),
                info: "Active Socket: Connection refused".into(),
            },
        ],
        routes: vec![route("198.18.10.10/32", "vip", Some("drained")), route("198.18.12.1/32", "local_ip", None)],
    };
    let expected = "\
bgp: as 65001, router id 198.18.0.11, bird running (1 restarts), node drained

NEIGHBOR         AS  UP   STATE  INFO
198.18.0.254  65000  yes  up     Established
198.18.0.253  65000  no   start  Active Socket: Connection refused

PREFIX           KIND      ANNOUNCED
198.18.10.10/32  vip       no (drained)
198.18.12.1/32   local_ip  yes
";
    assert_eq!(format::bgp(&bgp), expected);
    let data = serde_json::to_value(&bgp).unwrap();
    assert_eq!(format::render(&Request::DrainNode, &data, false).unwrap(), expected);
    assert_eq!(data["routes"][1].get("withdrawn"), None, "absent when announced");
}

#[test]
fn cluster_shows_each_peer_with_what_it_holds_and_drops() {
    let peer = |address: &str, up: bool, dropped: Vec<(String, u64)>| PeerStatus {
        address: address.into(),
        node: up.then_some(2),
        up,
        epoch: None,
        sessions_held: if up { 120 } else { 0 },
        sessions_reported: 0,
        local_ips: vec![],
        digest_matches: None,
        messages_in: 10,
        messages_out: 11,
        records_in: 0,
        records_out: 0,
        resends: 1,
        dropped,
        awaiting_bulk: false,
    };
    let c = ClusterStatus {
        node: 1,
        epoch: 1795786620359068,
        ready: true,
        peers: vec![
            peer("198.18.0.12", true, vec![("replay".into(), 1), ("bad_mac".into(), 2)]),
            peer("198.18.0.13", false, vec![]),
        ],
        dropped: vec![],
    };
    let expected = "\
cluster: node 1, epoch 1795786620359068, in sync

PEER         NODE  UP   HELD  MSGS_IN  MSGS_OUT  RESENT  DROPPED
198.18.0.12     2  yes   120       10        11       1  replay 1, bad_mac 2
198.18.0.13     -  no      0       10        11       1  -
";
    assert_eq!(format::cluster(&c), expected);
}
