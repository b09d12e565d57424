use std::net::Ipv4Addr;

use ctrlplane::config::{parse, Host};
use dataplane::route::Routes;
use dataplane::session::Timeouts;

use super::*;
use dataplane::snapshot::Steering;

fn config(backends_dns: &[&str], with_web: bool) -> Config {
    let mut text = String::from(
        r#"
[dpdk]
args = ["--vdev=net_af_packet0,iface=lb0"]
[cpu]
workers = [1]
[[interface]]
name = "lan"
device = "net_af_packet0"
addresses = ["198.18.1.1/24"]
[[service]]
name = "dns"
vip = "198.18.1.10:53"
protocol = "udp"
local_ips = ["198.18.1.100"]
"#,
    );
    for b in backends_dns {
        text.push_str(&format!("[[service.backend]]\naddress = \"{b}\"\n"));
    }
    if with_web {
        text.push_str(
            "[[service]]\nname = \"web\"\nvip = \"198.18.1.10:80\"\nprotocol = \"tcp\"\nlocal_ips = [\"198.18.1.101\"]\n\
             [[service.backend]]\naddress = \"198.18.1.2:80\"\nweight = 2\n",
        );
    }
    parse(&text, "t.toml", &Host { cpus: 2 }).expect("valid config")
}

fn snapshot(model: &mut Model) -> Snapshot {
    let routes = Routes::new(&[(Ipv4Addr::new(198, 18, 1, 0), 24, 0)], &[]).unwrap();
    model.snapshot(&[], routes, Timeouts::default(), 1, &[])
}

fn addr(s: &str) -> SocketAddrV4 {
    s.parse().unwrap()
}

#[test]
fn backends_that_stay_keep_their_ids_across_a_reload() {
    let mut model = Model::default();
    model.apply(&config(&["198.18.1.2:53", "198.18.1.3:53", "198.18.1.4:53"], true)).unwrap();
    let (id2, id3, id4) = (
        model.backend_id("dns", addr("198.18.1.2:53")).unwrap(),
        model.backend_id("dns", addr("198.18.1.3:53")).unwrap(),
        model.backend_id("dns", addr("198.18.1.4:53")).unwrap(),
    );
    let changes = model.apply(&config(&["198.18.1.2:53", "198.18.1.4:53", "198.18.1.5:53"], true)).unwrap();
    assert_eq!(
        changes,
        ["service dns: backend 198.18.1.5:53 added", "service dns: backend 198.18.1.3:53 removed"],
        "one line per change"
    );
    assert_eq!(model.backend_id("dns", addr("198.18.1.2:53")), Some(id2));
    assert_eq!(model.backend_id("dns", addr("198.18.1.4:53")), Some(id4));
    assert_eq!(model.backend_id("dns", addr("198.18.1.3:53")), None);
    let snap = snapshot(&mut model);
    assert!(!snap.backends[id3 as usize].live, "a removed backend's id is not live");
    let dns = &snap.services[0];
    assert_eq!(dns.members.len(), 3);
    assert!(dns.members.iter().all(|&id| snap.backends[id as usize].live));
    assert_eq!(snap.backends[dns.members[2] as usize].endpoint.port, 53);
    assert_eq!(snap.backends[id2 as usize].hop.map(|h| h.gateway), Some(Ipv4Addr::new(198, 18, 1, 2)));
}

#[test]
fn a_removed_service_leaves_its_slot_dead_and_its_vip_unserved() {
    let mut model = Model::default();
    model.apply(&config(&["198.18.1.2:53"], true)).unwrap();
    let web_backend = model.backend_id("web", addr("198.18.1.2:80")).unwrap();
    let changes = model.apply(&config(&["198.18.1.2:53"], false)).unwrap();
    assert_eq!(changes, ["service web removed"]);
    let snap = snapshot(&mut model);
    assert!(snap.services[0].live && !snap.services[1].live);
    assert!(!snap.backends[web_backend as usize].live);
    assert_eq!(snap.vips.service(6, Ipv4Addr::new(198, 18, 1, 10), 80), None);
    assert_eq!(snap.vips.service(17, Ipv4Addr::new(198, 18, 1, 10), 53), Some(0));
    let changes = model.apply(&config(&["198.18.1.2:53"], true)).unwrap();
    assert_eq!(changes, ["service web added"]);
}

#[test]
fn run_time_changes_show_in_snapshots_until_the_next_reload() {
    let mut model = Model::default();
    model.apply(&config(&["198.18.1.2:53", "198.18.1.3:53"], false)).unwrap();
    let (a, b) = (
        model.backend_id("dns", addr("198.18.1.2:53")).unwrap(),
        model.backend_id("dns", addr("198.18.1.3:53")).unwrap(),
    );
    model.set_override(a, |o| o.weight = Some(7));
    model.set_override(b, |o| o.drain = true);
    let snap = snapshot(&mut model);
    assert_eq!((snap.backends[a as usize].weight, snap.backends[a as usize].state), (7, BackendState::Up));
    assert_eq!(snap.backends[b as usize].state, BackendState::Draining);
    assert_eq!(snap.backends[b as usize].effective_weight(), 0);
    assert!(model.set_down(a, true) && !model.set_down(a, true), "a change only once");
    assert_eq!(snapshot(&mut model).backends[a as usize].state, BackendState::Down);

    assert!(model.apply(&config(&["198.18.1.2:53", "198.18.1.3:53"], false)).unwrap().is_empty());
    let snap = snapshot(&mut model);
    assert_eq!(snap.backends[a as usize].weight, 1, "the file is the truth again");
    assert_eq!(snap.backends[b as usize].state, BackendState::Up);
    assert_eq!(snap.backends[a as usize].state, BackendState::Down, "health is not a run-time override");
}

#[test]
fn generations_increase_with_every_snapshot() {
    let mut model = Model::default();
    model.apply(&config(&["198.18.1.2:53"], false)).unwrap();
    let (one, two) = (snapshot(&mut model).generation, snapshot(&mut model).generation);
    assert!(two > one);
}

#[test]
fn below_min_active_the_service_loses_its_quorum_and_its_vip_goes_silent() {
    let mut text = String::from(
        "[dpdk]\nargs = []\n[cpu]\nworkers = [1]\n[[interface]]\nname = \"lan\"\ndevice = \"net0\"\naddresses = [\"198.18.1.1/24\"]\n\
         [[service]]\nname = \"dns\"\nvip = \"198.18.1.10:53\"\nprotocol = \"udp\"\nlocal_ips = [\"198.18.1.100\"]\nmin_active = 2\n",
    );
    for d in 2..5 {
        text.push_str(&format!("[[service.backend]]\naddress = \"198.18.1.{d}:53\"\n"));
    }
    let config = parse(&text, "t.toml", &Host { cpus: 2 }).unwrap();
    let mut model = Model::default();
    model.apply(&config).unwrap();
    let vip = Ipv4Addr::new(198, 18, 1, 10);
    let link = Link {
        name: "lan".into(),
        port: 0,
        kernel_port: 1,
        mac: dataplane::wire::MacAddr::default(),
        addresses: vec![(Ipv4Addr::new(198, 18, 1, 1), 24)],
        owned: dataplane::classify::OwnedAddrs::new([vip]),
        checksum_offload: false,
        steering: Steering::Single,
        rss: None,
        mtu: 1500,
    };
    let routes = || Routes::new(&[(Ipv4Addr::new(198, 18, 1, 0), 24, 0)], &[]).unwrap();
    let ids: Vec<u16> = (2..5).map(|d| model.backend_id("dns", addr(&format!("198.18.1.{d}:53"))).unwrap()).collect();

    model.set_down(ids[0], true);
    let snap = model.snapshot(std::slice::from_ref(&link), routes(), Timeouts::default(), 1, &[]);
    assert!(snap.services[0].quorum, "2 of 3 healthy, min_active 2");
    assert!(!snap.links[0].owned.is_silent(vip));

    model.set_down(ids[1], true);
    let snap = model.snapshot(std::slice::from_ref(&link), routes(), Timeouts::default(), 1, &[]);
    assert!(!snap.services[0].quorum, "1 of 3 healthy");
    assert!(snap.links[0].owned.is_silent(vip) && snap.links[0].owned.contains(vip));

    model.set_down(ids[1], false);
    let snap = model.snapshot(std::slice::from_ref(&link), routes(), Timeouts::default(), 1, &[]);
    assert!(snap.services[0].quorum && !snap.links[0].owned.is_silent(vip), "back with the quorum");
}
