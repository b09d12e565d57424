//! Session sync on the data path: two nodes' workers (labs) with the same services, records
//! carried between them by hand.

use std::sync::Arc;

use super::*;
use crate::session::ORIGIN_HERE;
use crate::sync::{SyncChannel, SyncCommand, SyncRecord, SyncSetup, WalkItem};

fn node(id: u16, incarnation: u32) -> (Lab, Arc<SyncChannel>) {
    let mut lab = Lab::new();
    let channel = Arc::new(SyncChannel::default());
    lab.nat.enable_sync(SyncSetup { node: id, incarnation, channel: channel.clone() });
    (lab, channel)
}

fn updates(channel: &SyncChannel) -> Vec<SyncRecord> {
    std::iter::from_fn(|| channel.updates.pop()).collect()
}

/// Hands `records` to `lab` as the engine would, and lets it take them.
fn install(lab: &mut Lab, channel: &SyncChannel, records: &[SyncRecord], now_ms: u64) {
    for r in records {
        channel.commands.push(SyncCommand::Upsert(*r)).unwrap();
    }
    while lab.nat.sync_step(&lab.snap, now_ms, &lab.c) > 0 {}
}

#[test]
fn a_session_opened_on_one_node_forwards_the_same_on_another() {
    let (mut a, ca) = node(1, 100);
    let (mut b, cb) = node(2, 200);
    let local = a.query(CLIENT, DNS_BACKENDS[0], 1000);
    let sent = updates(&ca);
    assert_eq!(sent.len(), 1, "opened: sent at once");
    let r = sent[0];
    assert_eq!((r.owner, r.incarnation, r.state, r.idle_ms), (1, 100, State::UdpNew, 0));
    assert_eq!((r.local.ip, r.local.port), local);
    install(&mut b, &cb, &sent, 1005);
    assert_eq!(b.c.sync_installed.get(), 1);
    let copy = b.session(protocol::UDP, CLIENT, DNS).expect("a copy");
    assert_eq!((copy.origin, copy.local, copy.backend), (1, r.local, r.backend));
    assert_eq!(b.c.held_for(1).map(|g| g.get()), Some(1));
    // Node 2 forwards the flow as node 1 would, from node 1's local address and port ...
    let mut q = udp_packet(CLIENT, DNS, 64, QUERY, true, &[]);
    assert_eq!(
        b.process(&mut q, 1010),
        Step::Forward { hop: Hop { link: 1, gateway: DNS_BACKENDS[0].0 }, offload: None }
    );
    assert_eq!(q, udp_packet(local, DNS_BACKENDS[0], 63, QUERY, true, &[]));
    // ... and the backend's reply to that address leaves as the VIP.
    let mut a2 = udp_packet(DNS_BACKENDS[0], local, 64, ANSWER, true, &[]);
    assert_eq!(b.process(&mut a2, 1020), Step::Forward { hop: Hop { link: 0, gateway: CLIENT.0 }, offload: None });
    assert_eq!(a2, udp_packet(DNS, CLIENT, 63, ANSWER, true, &[]));
    assert_eq!(b.c.sessions_created.get(), 0, "no session of its own");
    assert!(updates(&cb).is_empty(), "a copy used within half its timeout sends nothing");
}

#[test]
fn copies_keep_their_ports_to_themselves_and_sessions_here_win() {
    let (mut a, ca) = node(1, 100);
    let (mut b, cb) = node(2, 200);
    // Both labs have the same local IPs and pools (a test shortcut; nodes have their own):
    // node 2 opens a session of its own on the port node 1 used, to the same backend.
    a.query(CLIENT, DNS_BACKENDS[0], 1000);
    b.query(client(41000), DNS_BACKENDS[0], 1000);
    let r = updates(&ca)[0];
    install(&mut b, &cb, &[r], 1001);
    assert_eq!(b.c.sync_refused.get(), 1, "the (backend, local) pair is held by a session of node 2");
    assert!(b.session(protocol::UDP, CLIENT, DNS).is_none());
    // A copy on a port node 2's pool has free never takes it from the pool, nor gives it back.
    let (mut c, cc) = node(3, 300);
    let free = c.free(DNS_LOCAL);
    install(&mut c, &cc, &[r], 1001);
    assert_eq!(c.free(DNS_LOCAL), free);
    assert_eq!(c.nat.expire(60_000, 100, &c.c), 1);
    assert_eq!(c.free(DNS_LOCAL), free, "a copy's end gives nothing back");
    assert_eq!(c.c.held_for(1).map(|g| g.get()), Some(0));
}

#[test]
fn own_sessions_come_back_only_from_an_earlier_life() {
    let (mut a, ca) = node(1, 100);
    a.query(CLIENT, DNS_BACKENDS[0], 1000);
    let r = updates(&ca)[0];
    // Another worker of node 1 (same node, same incarnation) has no copy to make of it.
    let (mut w2, c2) = node(1, 100);
    install(&mut w2, &c2, &[r], 1001);
    assert!(w2.session(protocol::UDP, CLIENT, DNS).is_none());
    // Node 1 after a restart (another incarnation) takes its old session back as a copy.
    let (mut again, c3) = node(1, 101);
    install(&mut again, &c3, &[r], 1001);
    let s = again.session(protocol::UDP, CLIENT, DNS).expect("the old session");
    assert_eq!(s.origin, 1);
    // The session it had refreshes from a peer's record, keeping what is newer.
    let refreshed = SyncRecord { idle_ms: 0, ..r };
    install(&mut a, &ca, &[refreshed], 5000);
    let s = a.session(protocol::UDP, CLIENT, DNS).unwrap();
    assert_eq!((s.origin, s.last_seen_ms), (ORIGIN_HERE, 5000));
}

#[test]
fn state_changes_and_refreshes_are_sent_but_tcp_states_never_go_back() {
    let (mut a, ca) = node(1, 100);
    let local = a.syn(CLIENT, WEB_BACKENDS[0], 1000);
    assert_eq!(updates(&ca).iter().map(|r| r.state).collect::<Vec<_>>(), [State::TcpSynSent]);
    a.segment(WEB_BACKENDS[0], local, Flags::SYN | Flags::ACK, 1010);
    let established = updates(&ca);
    assert_eq!(established.iter().map(|r| r.state).collect::<Vec<_>>(), [State::TcpEstablished], "state change");
    a.segment(CLIENT, WEB, Flags::ACK, 1020);
    assert!(updates(&ca).is_empty(), "nothing new to say");
    // Established times out after 5 s here: used again 2.5 s after the last record, it is sent.
    a.segment(CLIENT, WEB, Flags::ACK, 3400);
    assert!(updates(&ca).is_empty());
    a.segment(CLIENT, WEB, Flags::ACK, 3600);
    assert_eq!(updates(&ca).len(), 1, "a refresh before peers' copies would time out");
    // A FIN here, then a late record saying established: fin_wait stays.
    a.segment(CLIENT, WEB, Flags::FIN | Flags::ACK, 3700);
    assert_eq!(updates(&ca)[0].state, State::TcpFinWait);
    install(&mut a, &ca, &established, 3710);
    assert_eq!(a.session(protocol::TCP, CLIENT, WEB).unwrap().state, State::TcpFinWait);
}

#[test]
fn a_walk_sends_every_session_then_its_end() {
    let (mut a, ca) = node(1, 100);
    for port in 0..40 {
        a.query(client(42000 + port), DNS_BACKENDS[(port % 3) as usize], 1000);
    }
    updates(&ca);
    ca.commands.push(SyncCommand::Walk(7)).unwrap();
    let mut records = Vec::new();
    let mut done = false;
    for _ in 0..100 {
        a.nat.sync_step(&a.snap, 1100, &a.c);
        while let Some(item) = ca.walk.pop() {
            match item {
                WalkItem::Record(7, r) => records.push(r),
                WalkItem::Done(7) => done = true,
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    assert!(done);
    assert_eq!(records.len(), 40);
    assert!(records.iter().all(|r| r.owner == 1 && r.idle_ms == 100));
}

#[test]
fn records_this_node_cannot_place_are_refused() {
    let (mut b, cb) = node(2, 200);
    let base = SyncRecord {
        proto: protocol::UDP,
        state: State::Udp,
        owner: 1,
        incarnation: 1,
        client: Endpoint::new(CLIENT.0, CLIENT.1),
        vip: Endpoint::new(VIP, 53),
        local: Endpoint::new(ip(1, 200), 3000),
        backend: Endpoint::new(DNS_BACKENDS[1].0, DNS_BACKENDS[1].1),
        idle_ms: 0,
    };
    let unknown_service = SyncRecord { vip: Endpoint::new(VIP, 54), ..base };
    let unknown_backend = SyncRecord { backend: Endpoint::new(ip(1, 99), 53), ..base };
    install(&mut b, &cb, &[unknown_service, unknown_backend], 1000);
    assert_eq!((b.c.sync_refused.get(), b.c.sync_installed.get()), (2, 0));
    install(&mut b, &cb, &[base], 1000);
    assert_eq!(b.c.sync_installed.get(), 1);
}

#[test]
fn a_new_session_steps_over_ports_copies_hold() {
    let (mut a, ca) = node(1, 100);
    a.query(CLIENT, DNS_BACKENDS[0], 1000);
    let r = updates(&ca)[0];
    // Node 3's pool would hand out the very port node 1's session holds (same pools here).
    let (mut c, cc) = node(3, 300);
    install(&mut c, &cc, &[r], 1001);
    let local = c.query(client(43000), DNS_BACKENDS[0], 1002);
    assert_eq!(local.0, r.local.ip);
    assert_ne!(local.1, r.local.port, "the held port was passed over");
    assert_eq!(c.c.sessions_created.get(), 1);
}

#[test]
fn a_backend_at_the_hosts_own_address_is_reached_through_its_kernel() {
    // The lan link's host address 198.18.1.1 serves DNS itself, on a port with offload.
    let mut snap = snapshot(Options { lan_offload: true, ..PLAIN });
    let routes = Routes::new(&[(ip(0, 0), 24, 0), (ip(1, 0), 24, 1)], &[(Ipv4Addr::UNSPECIFIED, 0, ROUTER)])
        .unwrap()
        .with_hosts([(ip(0, 1), 0), (ip(1, 1), 1)]);
    let own = Endpoint::new(ip(1, 1), 53);
    snap.backends[0].endpoint = own;
    snap.backends[0].hop = routes.lookup(own.ip).map(Into::into);
    snap.routes = routes;
    let mut nat = FullNat::for_worker(&snap, 0, 1, 64);
    let c = WorkerCounters::default();
    let mut q = udp_packet(CLIENT, DNS, 64, QUERY, true, &[]);
    let step = nat.process(&snap, &mut q, 1000, &c);
    let Step::Forward { hop, offload } = step else { panic!("{step:?}") };
    assert!(hop.to_kernel() && hop.link_index() == 1, "{hop:?}");
    assert_eq!(offload, None, "the kernel gets whole checksums, whatever the port offloads");
    let s = *nat.sessions().get(
        nat.sessions()
            .lookup(&FlowKey {
                proto: protocol::UDP,
                src: Endpoint::new(CLIENT.0, CLIENT.1),
                dst: Endpoint::new(DNS.0, DNS.1),
            })
            .unwrap()
            .0,
    );
    assert_eq!(q, udp_packet((s.local.ip, s.local.port), (own.ip, 53), 63, QUERY, true, &[]));
    assert_checksums_exact(&q);
}

#[test]
fn a_copy_on_every_worker_counts_once_for_its_backend() {
    let (mut a, ca) = node(1, 100);
    a.query(CLIENT, DNS_BACKENDS[0], 1000);
    let r = updates(&ca)[0];
    // Node 2 has two workers: each holds a copy (a flow's queue cannot be known), and opens a
    // session of its own on the first.
    let (mut w0, c0) = node(2, 200);
    let (mut w1, c1) = node(2, 200);
    install(&mut w0, &c0, &[r], 1001);
    install(&mut w1, &c1, &[r], 1001);
    w0.query(client(41000), DNS_BACKENDS[0], 1002);
    let id = w0.snap.services[0].members[0];
    let active = |w0: &Lab, w1: &Lab| crate::counters::backend_active([&w0.c, &w1.c].into_iter(), id);
    assert_eq!(active(&w0, &w1), 2, "node 1's session once, node 2's own once");
    assert_eq!((w0.c.backends[id as usize].active.get(), w0.c.backends[id as usize].copies.get()), (1, 1));
    // Everything ends: nothing is left counted.
    assert_eq!(w0.nat.expire(60_000, 100, &w0.c) + w1.nat.expire(60_000, 100, &w1.c), 3);
    assert_eq!(active(&w0, &w1), 0);
}
