//! Two engines over real UDP sockets, inside a network namespace of this test's own (made by
//! `unshare` on the test's thread: only a loopback, with two 198.18.0.0/15 addresses on it),
//! each over a table held in memory.

use std::collections::BTreeMap;
use std::process::Command;

use super::*;
use crate::sync::wire::{Body, Header, Message};

const A: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 11);
const B: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 12);
const PORT: u16 = 8849;
const SECRET: &[u8] = b"engine test key, 32 bytes long!!";

/// Runs `f` on a thread in a new network namespace with A and B on its loopback.
fn isolated<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    std::thread::spawn(move || {
        // SAFETY: unshare affects only the calling thread.
        assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0, "unshare needs root");
        for args in [
            vec!["link", "set", "lo", "up"],
            vec!["addr", "add", "198.18.0.11/32", "dev", "lo"],
            vec!["addr", "add", "198.18.0.12/32", "dev", "lo"],
            vec!["addr", "add", "198.18.0.13/32", "dev", "lo"],
        ] {
            assert!(Command::new("ip").args(&args).status().unwrap().success(), "ip {args:?}");
        }
        f()
    })
    .join()
    .expect("isolated thread")
}

type Key4 = (SocketAddrV4, SocketAddrV4);
/// A walk under way: its generation and the records it has still to give.
type Walk = Option<(u32, Vec<SessionRecord>)>;

/// A table in memory: sessions by (client, vip); updates and walks fed by the test.
#[derive(Clone, Default)]
struct Memory {
    sessions: Arc<Mutex<BTreeMap<Key4, SessionRecord>>>,
    updates: Arc<Mutex<Vec<SessionRecord>>>,
    applied: Arc<Mutex<u64>>,
    walk: Arc<Mutex<Walk>>,
}

impl Table for Memory {
    fn apply(&mut self, records: &[SessionRecord]) {
        let mut s = self.sessions.lock().unwrap();
        for r in records {
            s.insert((r.client, r.vip), *r);
        }
        *self.applied.lock().unwrap() += records.len() as u64;
    }

    fn updates(&mut self, out: &mut Vec<SessionRecord>, max: usize) {
        let mut u = self.updates.lock().unwrap();
        let n = u.len().min(max);
        out.extend(u.drain(..n));
    }

    fn start_walk(&mut self, generation: u32) {
        let all: Vec<SessionRecord> = self.sessions.lock().unwrap().values().copied().collect();
        *self.walk.lock().unwrap() = Some((generation, all));
    }

    fn walk(&mut self, generation: u32, out: &mut Vec<SessionRecord>, max: usize) -> bool {
        let mut w = self.walk.lock().unwrap();
        match w.as_mut() {
            Some((g, rest)) if *g == generation => {
                let n = rest.len().min(max);
                out.extend(rest.drain(..n));
                rest.is_empty()
            }
            _ => true,
        }
    }

    fn sessions(&self) -> u32 {
        self.sessions.lock().unwrap().len() as u32
    }

    fn lost(&mut self) -> u64 {
        0
    }
}

impl Memory {
    fn open(&self, n: u16, owner: u16) {
        let r = record(n, owner);
        self.sessions.lock().unwrap().insert((r.client, r.vip), r);
        self.updates.lock().unwrap().push(r);
    }

    fn len(&self) -> usize {
        self.sessions.lock().unwrap().len()
    }
}

fn record(n: u16, owner: u16) -> SessionRecord {
    SessionRecord {
        proto: 6,
        state: 2,
        owner,
        incarnation: 1,
        client: SocketAddrV4::new(Ipv4Addr::new(198, 18, 2, 2), 1000 + n),
        vip: SocketAddrV4::new(Ipv4Addr::new(198, 18, 10, 10), 80),
        local: SocketAddrV4::new(Ipv4Addr::new(198, 18, 12, owner as u8), 2000 + n),
        backend: SocketAddrV4::new(Ipv4Addr::new(198, 18, 1, 2), 80),
        idle_ms: 0,
    }
}

fn settings(node: u16, me: Ipv4Addr, peer: Ipv4Addr) -> Settings {
    Settings {
        node,
        address: me,
        port: PORT,
        peers: vec![peer],
        hello: Duration::from_millis(50),
        dead_after: Duration::from_millis(300),
        key: Key::new(SECRET).unwrap(),
        epoch: 1_000_000 + u64::from(node) + now_us(),
    }
}

fn now_us() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as u64
}

fn logger() -> (Log, Arc<Mutex<Vec<String>>>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    (Arc::new(move |_, l: &str, _: crate::bgp::Fields| sink.lock().unwrap().push(l.to_owned())), lines)
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn updates_flow_both_ways_and_a_late_node_gets_the_whole_table() {
    isolated(|| {
        let (ta, tb) = (Memory::default(), Memory::default());
        // A holds sessions before B exists.
        for n in 0..500 {
            ta.open(n, 1);
        }
        let (log_a, lines_a) = logger();
        let a = Engine::start(settings(1, A, B), ta.clone(), log_a).expect("a");
        a.set_advert(Advert { local_ips: vec![Ipv4Addr::new(198, 18, 12, 1)], digest: 42 });
        std::thread::sleep(Duration::from_millis(100));
        let (log_b, lines_b) = logger();
        let b = Engine::start(settings(2, B, A), tb.clone(), log_b).expect("b");
        b.set_advert(Advert { local_ips: vec![Ipv4Addr::new(198, 18, 12, 2)], digest: 42 });
        wait_until("b has a's table", || tb.len() == 500);
        wait_until("b is ready", || b.status().ready);
        assert!(lines_b.lock().unwrap().iter().any(|l| l.contains("received the whole table of peer 198.18.0.11")));
        // Live updates, both ways.
        for n in 500..600 {
            ta.open(n, 1);
        }
        for n in 0..50 {
            tb.open(n + 1000, 2);
        }
        wait_until("b has a's updates", || tb.len() == 650);
        wait_until("a has b's updates", || ta.len() == 650);
        let sa = a.status();
        assert!(sa.ready && sa.peers[0].up, "{sa:?}");
        assert_eq!(sa.peers[0].node, Some(2));
        assert_eq!(sa.peers[0].local_ips, [Ipv4Addr::new(198, 18, 12, 2)]);
        assert_eq!(sa.peers[0].digest_matches, Some(true));
        assert!(sa.dropped.is_empty() && sa.peers[0].dropped.is_empty(), "{sa:?}");
        // B goes away: A says so within dead_after, and counts what it could not send.
        drop(b);
        wait_until("a sees b dead", || !a.status().peers[0].up);
        ta.open(700, 1);
        wait_until("the update was counted as skipped", || {
            a.status().peers[0].dropped.iter().any(|&(r, n)| r == "dead" && n >= 1)
        });
        let log = lines_a.lock().unwrap().join("\n");
        assert!(log.contains("peer 198.18.0.12 (node 2) up"), "{log}");
        assert!(log.contains("peer 198.18.0.12 (node 2) dead after 300ms of silence"), "{log}");
    });
}

#[test]
fn forged_and_replayed_messages_change_nothing_and_are_counted() {
    isolated(|| {
        let ta = Memory::default();
        let (log, _) = logger();
        let a = Engine::start(settings(1, A, B), ta.clone(), log).expect("a");
        // A node at B's address that speaks with the wrong key, then with the right one twice.
        let socket = UdpSocket::bind(SocketAddrV4::new(B, PORT)).unwrap();
        let to = SocketAddrV4::new(A, PORT);
        let message = |seq: u64, data_seq: u64| Message {
            header: Header { node: 2, epoch: 7, seq, data_seq, ..Header::default() },
            body: Body::Sessions(vec![record(seq as u16, 2)]),
        };
        let mut buf = Vec::new();
        encode(&message(1, 1), &Key::new(b"the wrong key, also long enough").unwrap(), &mut buf);
        socket.send_to(&buf, to).unwrap();
        socket.send_to(b"not even a message", to).unwrap();
        wait_until("the forgery is counted", || {
            let d = a.status().peers[0].dropped.clone();
            d.contains(&("bad_mac", 1)) && d.contains(&("malformed", 1))
        });
        assert_eq!(ta.len(), 0);
        let good = Key::new(SECRET).unwrap();
        encode(&message(1, 1), &good, &mut buf);
        socket.send_to(&buf, to).unwrap();
        wait_until("the genuine message is applied", || ta.len() == 1);
        socket.send_to(&buf, to).unwrap();
        wait_until("its replay is counted", || a.status().peers[0].dropped.contains(&("replay", 1)));
        // An older epoch of the same node: stale.
        let mut old = message(2, 2);
        old.header.epoch = 6;
        encode(&old, &good, &mut buf);
        socket.send_to(&buf, to).unwrap();
        wait_until("the stale epoch is counted", || a.status().peers[0].dropped.contains(&("stale_epoch", 1)));
        assert_eq!(*ta.applied.lock().unwrap(), 1, "nothing but the genuine message was applied");
        // Someone at an address that is no peer, even with the key.
        let stranger = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 13), PORT)).unwrap();
        encode(&message(3, 3), &good, &mut buf);
        stranger.send_to(&buf, to).unwrap();
        wait_until("the stranger is counted", || a.status().dropped.contains(&("unknown_peer", 1)));
        assert_eq!(ta.len(), 1);
        drop(a);
    });
}

#[test]
fn nodes_that_schedule_from_different_input_say_so() {
    isolated(|| {
        let (log_a, lines_a) = logger();
        let a = Engine::start(settings(1, A, B), Memory::default(), log_a).expect("a");
        let (log_b, _) = logger();
        let b = Engine::start(settings(2, B, A), Memory::default(), log_b).expect("b");
        a.set_advert(Advert { local_ips: vec![], digest: 0x1111 });
        b.set_advert(Advert { local_ips: vec![], digest: 0x2222 });
        wait_until("a sees the difference", || a.status().peers[0].digest_matches == Some(false));
        wait_until("a logs it after its grace", || {
            lines_a.lock().unwrap().iter().any(|l| l.contains("peer 198.18.0.12 schedules from another input"))
        });
        b.set_advert(Advert { local_ips: vec![], digest: 0x1111 });
        wait_until("they agree again", || a.status().peers[0].digest_matches == Some(true));
    });
}
