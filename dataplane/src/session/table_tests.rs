//! `SessionTable` unit tests: keys both ways, capacity, the TCP life cycle through `touch`,
//! and expiry (exactness, lazy re-arm, budget). The randomized model test is `model_tests`.

use std::net::Ipv4Addr;
use std::time::Duration;

use super::tcp_flags::{ACK, FIN, RST, SYN};
use super::*;

const TCP: u8 = 6;
const UDP: u8 = 17;

pub(super) fn test_timeouts() -> Timeouts {
    Timeouts {
        tcp_syn: Duration::from_secs(5),
        tcp_established: Duration::from_secs(60),
        tcp_fin_wait: Duration::from_secs(2),
        tcp_close_wait: Duration::from_secs(2),
        tcp_last_ack: Duration::from_secs(2),
        tcp_time_wait: Duration::from_secs(2),
        tcp_closing: Duration::from_secs(2),
        udp: Duration::from_secs(10),
        udp_new: Duration::from_secs(10),
    }
}

fn new_session(proto: u8, client_port: u16, local_port: u16, tcp_flags: u8) -> NewSession {
    NewSession {
        proto,
        client: Endpoint::new(Ipv4Addr::new(198, 51, 100, 7), client_port),
        vip: Endpoint::new(Ipv4Addr::new(192, 0, 2, 1), 80),
        local: Endpoint::new(Ipv4Addr::new(10, 0, 0, 1), local_port),
        backend: Endpoint::new(Ipv4Addr::new(10, 0, 1, 5), 8080),
        service: 3,
        backend_index: 1,
        tcp_flags,
        hops: Default::default(),
    }
}

fn table(capacity: u32) -> SessionTable {
    SessionTable::with_seed(capacity, test_timeouts(), 99)
}

/// Calls `expire` once per ms over `from..=to` and returns the times at which sessions went.
fn expire_each_ms(t: &mut SessionTable, from: u64, to: u64) -> Vec<u64> {
    let mut at = Vec::new();
    for now in from..=to {
        let n = t.expire(now, usize::MAX, |_| {});
        at.resize(at.len() + n, now);
    }
    at
}

#[test]
fn session_is_compact() {
    assert_eq!(std::mem::size_of::<Endpoint>(), 6);
    // One cache line, aligned: a packet's session costs one miss.
    assert_eq!(std::mem::size_of::<Session>(), 64);
    assert_eq!(std::mem::align_of::<Session>(), 64);
    let t = table(1_000_000);
    assert_eq!(t.get(SessionId(12_345)) as *const Session as usize % 64, 0);
    let per_session = t.memory_bytes() as f64 / t.capacity() as f64;
    // 64 slab + 8 wheel links + 21.3 index (two keys at load <= 3/4).
    assert!(per_session < 94.0, "{per_session} bytes a session");
}

#[test]
fn lookup_both_directions() {
    let mut t = table(16);
    let new = new_session(TCP, 40000, 2000, SYN);
    let id = t.insert(new, 1000).unwrap();
    assert_eq!(t.len(), 1);
    let s = t.get(id);
    assert_eq!(
        (s.state, s.created_ms, s.last_seen_ms, s.service, s.backend_index),
        (State::TcpSynSent, 1000, 1000, 3, 1)
    );
    assert_eq!(t.lookup(&s.key(Direction::Forward)), Some((id, Direction::Forward)));
    assert_eq!(t.lookup(&s.key(Direction::Reply)), Some((id, Direction::Reply)));
    let reversed = FlowKey { proto: TCP, src: new.vip, dst: new.client };
    assert_eq!(t.lookup(&reversed), None);
    assert_eq!(t.lookup(&FlowKey { proto: UDP, ..s.key(Direction::Forward) }), None);
    let listed: Vec<SessionId> = t.iter().map(|(id, _)| id).collect();
    assert_eq!(listed, [id]);
}

#[test]
fn remove_returns_the_session_and_frees_its_keys() {
    let mut t = table(16);
    let a = t.insert(new_session(TCP, 40000, 2000, SYN), 0).unwrap();
    let b = t.insert(new_session(TCP, 40001, 2001, SYN), 0).unwrap();
    let removed = t.remove(a);
    assert_eq!(removed.local.port, 2000);
    assert_eq!(t.len(), 1);
    assert_eq!(t.lookup(&removed.key(Direction::Forward)), None);
    assert_eq!(t.lookup(&removed.key(Direction::Reply)), None);
    assert_eq!(t.lookup(&t.get(b).key(Direction::Reply)), Some((b, Direction::Reply)));
    // Both keys can be used again.
    assert!(t.insert(new_session(TCP, 40000, 2000, SYN), 0).is_ok());
}

#[test]
#[should_panic(expected = "not live")]
fn removing_twice_is_a_bug_not_a_corruption() {
    let mut t = table(4);
    let a = t.insert(new_session(TCP, 40000, 2000, SYN), 0).unwrap();
    t.remove(a);
    t.remove(a);
}

#[test]
fn full_table_refuses_without_panic() {
    let mut t = table(4);
    for i in 0..4 {
        t.insert(new_session(UDP, 1000 + i, 2000 + i, 0), 0).unwrap();
    }
    assert_eq!(t.insert(new_session(UDP, 1004, 2004, 0), 0), Err(InsertError::TableFull));
    assert_eq!(t.len(), 4);
    let (id, _) = t.lookup(&new_session(UDP, 1002, 2002, 0).key_forward()).unwrap();
    t.remove(id);
    assert!(t.insert(new_session(UDP, 1004, 2004, 0), 0).is_ok());

    let mut empty = table(0);
    assert_eq!(empty.insert(new_session(UDP, 1, 2, 0), 0), Err(InsertError::TableFull));
    assert_eq!(empty.lookup(&new_session(UDP, 1, 2, 0).key_forward()), None);
    assert_eq!(empty.expire(1_000_000, 10, |_| {}), 0);
}

#[test]
fn duplicate_keys_refused() {
    let mut t = table(8);
    t.insert(new_session(TCP, 40000, 2000, SYN), 0).unwrap();
    let same_client = new_session(TCP, 40000, 2001, SYN);
    assert_eq!(t.insert(same_client, 0), Err(InsertError::DuplicateKey(Direction::Forward)));
    let same_local = new_session(TCP, 40001, 2000, SYN);
    assert_eq!(t.insert(same_local, 0), Err(InsertError::DuplicateKey(Direction::Reply)));
    assert_eq!(t.len(), 1);
    // The same ports under another protocol are another flow.
    assert!(t.insert(new_session(UDP, 40000, 2000, 0), 0).is_ok());
    // A session whose two keys are one and the same is refused too.
    let mut looped = new_session(TCP, 1, 80, SYN);
    looped.backend = looped.client;
    looped.local = looped.vip;
    assert_eq!(t.insert(looped, 0), Err(InsertError::DuplicateKey(Direction::Reply)));
}

#[test]
fn tcp_handshake_data_and_close() {
    use Direction::{Forward, Reply};
    let mut t = table(8);
    let id = t.insert(new_session(TCP, 40000, 2000, SYN), 0).unwrap();
    assert_eq!(t.touch(id, Forward, SYN, 0), Touch::Ok);
    assert_eq!(t.touch(id, Reply, SYN | ACK, 10), Touch::Ok);
    assert_eq!(t.get(id).state, State::TcpEstablished);
    assert_eq!(t.touch(id, Forward, ACK, 11), Touch::Ok);
    assert_eq!(t.touch(id, Forward, ACK, 12), Touch::Ok);
    assert_eq!(t.touch(id, Reply, ACK, 13), Touch::Ok);
    // Established outlives the SYN timeout.
    assert_eq!(t.expire(30_000, 100, |_| {}), 0);
    assert_eq!(t.touch(id, Forward, FIN | ACK, 30_000), Touch::Ok);
    assert_eq!(t.get(id).state, State::TcpFinWait);
    assert_eq!(t.touch(id, Reply, FIN | ACK, 30_001), Touch::Ok);
    assert_eq!(t.get(id).state, State::TcpLastAck);
    assert_eq!(t.touch(id, Forward, ACK, 30_002), Touch::Ok);
    assert_eq!(t.get(id).state, State::TcpTimeWait);
    let s = *t.get(id);
    // Both ways have spoken; nobody has looked at its standing (`fullnat::sweep`).
    assert_eq!(s.seen, Direction::Forward.bit() | Direction::Reply.bit() | SEEN_STALE);
    assert_eq!(s.last_seen_ms, 30_002);
    // Time-wait expires after tcp_time_wait (2 s), not the established 60 s.
    let mut gone = Vec::new();
    assert_eq!(t.expire(32_002, 100, |s| gone.push(*s)), 0);
    assert_eq!(t.expire(32_100, 100, |s| gone.push(*s)), 1);
    assert_eq!(gone, [s]);
    assert!(t.is_empty());
}

#[test]
fn rst_closes_and_client_syn_reopens() {
    use Direction::{Forward, Reply};
    let mut t = table(8);
    let id = t.insert(new_session(TCP, 40000, 2000, SYN), 0).unwrap();
    assert_eq!(t.touch(id, Reply, RST | ACK, 5), Touch::Ok);
    assert_eq!(t.get(id).state, State::TcpClosing);
    assert_eq!(t.touch(id, Reply, SYN | ACK, 6), Touch::Ok, "nothing leaves closing");
    assert_eq!(t.get(id).state, State::TcpClosing);
    let before = *t.get(id);
    assert_eq!(t.touch(id, Forward, SYN, 7), Touch::Reopen);
    assert_eq!(*t.get(id), before, "a reopen records nothing");
    // The caller's part: remove, then create anew for the SYN.
    t.remove(id);
    let again = t.insert(new_session(TCP, 40000, 2000, SYN), 7).unwrap();
    assert_eq!(t.get(again).state, State::TcpSynSent);
}

#[test]
fn handshake_that_never_completes_expires_after_tcp_syn() {
    let mut t = table(8);
    let id = t.insert(new_session(TCP, 40000, 2000, SYN), 0).unwrap();
    assert_eq!(t.touch(id, Direction::Forward, ACK, 1000), Touch::Ok);
    assert_eq!(t.get(id).state, State::TcpSynSent, "no reply yet");
    assert_eq!(expire_each_ms(&mut t, 0, 7000), [6100]);
}

#[test]
fn udp_idle_expiry_is_exact_within_a_tick() {
    // Idle time must exceed 10 000 ms; then the next 100 ms boundary.
    for (start, expected) in [(0, 10_100), (1, 10_100), (99, 10_100), (100, 10_200), (150, 10_200), (12_345, 22_400)] {
        let mut t = table(8);
        t.insert(new_session(UDP, 5353, 2000, 0), start).unwrap();
        assert_eq!(expire_each_ms(&mut t, start, start + 10_300), [expected], "start {start}");
    }
}

#[test]
fn expiry_respects_refreshes() {
    let mut t = table(8);
    let id = t.insert(new_session(UDP, 5353, 2000, 0), 0).unwrap();
    assert_eq!(t.touch(id, Direction::Reply, 0, 8_000), Touch::Ok);
    assert_eq!(t.touch(id, Direction::Forward, 0, 9_999), Touch::Ok);
    // Due at 10 100 as filed, re-filed then (lazy re-arm) at 9 999 + 10 000 + 1 -> 20 000.
    assert_eq!(expire_each_ms(&mut t, 0, 25_000), [20_000]);
}

#[test]
fn state_change_refiles_at_the_new_timeout() {
    let mut t = table(8);
    let id = t.insert(new_session(TCP, 40000, 2000, ACK), 0).unwrap();
    assert_eq!(t.get(id).state, State::TcpEstablished, "picked up mid-stream");
    assert_eq!(t.touch(id, Direction::Forward, RST, 1000), Touch::Ok);
    // Filed at 60 s, moved to 1000 + 2000 + 1 -> 3100: no waiting for the old deadline.
    assert_eq!(expire_each_ms(&mut t, 0, 61_000), [3100]);
}

#[test]
fn budget_bounds_each_call() {
    let mut t = table(200);
    for i in 0..150 {
        t.insert(new_session(UDP, 1000 + i, 2000 + i, 0), 0).unwrap();
    }
    let mut released = Vec::new();
    assert_eq!(t.expire(10_100, 0, |s| released.push(s.local.port)), 0);
    assert_eq!(t.expire(10_100, 40, |s| released.push(s.local.port)), 40);
    assert_eq!(t.expire(10_100, 40, |s| released.push(s.local.port)), 40);
    assert_eq!(t.len(), 70);
    assert_eq!(t.expire(10_200, 1000, |s| released.push(s.local.port)), 70);
    released.sort_unstable();
    assert_eq!(released, (2000..2150).collect::<Vec<u16>>());
    assert!(t.is_empty() && t.iter().next().is_none());
}

#[test]
fn wall_clock_times_and_long_stalls() {
    let mut t = table(8);
    let start = 1_700_000_000_000; // ms since 1970: the cursor must not walk from 0
    let a = t.insert(new_session(UDP, 1, 2000, 0), start).unwrap();
    let b = t.insert(new_session(TCP, 2, 2001, ACK), start).unwrap();
    assert_eq!(t.expire(start + 5_000, 10, |_| {}), 0);
    // A stall of hours: one turn of the wheel at most, both found.
    assert_eq!(t.expire(start + 5 * 3_600_000, 10, |_| {}), 2);
    assert!(t.touch(a, Direction::Forward, 0, start) == Touch::Ok && t.touch(b, Direction::Forward, 0, 0) == Touch::Ok);
    assert!(t.is_empty(), "touching stale ids changes nothing");
}

#[test]
fn timeouts_longer_than_the_wheel_are_refiled() {
    let long = Timeouts { udp_new: Duration::from_secs(3 * 3600), ..test_timeouts() };
    let mut t = SessionTable::with_seed(4, long, 1);
    t.insert(new_session(UDP, 1, 2000, 0), 0).unwrap();
    let deadline = 3 * 3_600_000 + 1;
    let mut at = None;
    for now in (0..deadline + 1000).step_by(50) {
        if t.expire(now, 10, |_| {}) == 1 {
            at = Some(now);
            break;
        }
    }
    assert_eq!(at, Some(deadline.div_ceil(100) * 100));
}

#[test]
#[ignore = "allocates about 1.1 GB; run with --ignored --release"]
fn ten_million_sessions() {
    let mut t = SessionTable::with_capacity(10_000_000, Timeouts::default());
    let base = Ipv4Addr::new(10, 0, 0, 0);
    for i in 0..10_000_000u32 {
        let new = NewSession {
            client: Endpoint::new(Ipv4Addr::from(u32::from(base) + (i >> 16)), i as u16),
            local: Endpoint::new(Ipv4Addr::new(10, 9, (i >> 24) as u8, (i >> 16) as u8), i as u16),
            ..new_session(TCP, 0, 0, SYN)
        };
        t.insert(new, 0).unwrap();
    }
    assert_eq!(t.insert(new_session(TCP, 1, 1, SYN), 0), Err(InsertError::TableFull));
    println!("memory_bytes/capacity = {:.1}", t.memory_bytes() as f64 / t.capacity() as f64);
    assert_eq!(t.expire(31_000, usize::MAX, |_| {}), 10_000_000);
}

impl NewSession {
    fn key_forward(&self) -> FlowKey {
        FlowKey { proto: self.proto, src: self.client, dst: self.vip }
    }
}

/// A burst's hints are only hints: with hints taken before the table changed (sessions
/// removed, their slots reused by other flows), a hinted lookup finds exactly what a plain
/// lookup finds, both ways.
#[test]
fn hinted_lookups_find_what_lookups_find_however_stale_the_hint() {
    let mut t = table(256);
    let mut rng = 0x5eed;
    let flows: Vec<NewSession> = (0..600).map(|i| new_session(UDP, 1000 + i, 20_000 + i, 0)).collect();
    let key = |n: &NewSession, dir: Direction| match dir {
        Direction::Forward => FlowKey { proto: n.proto, src: n.client, dst: n.vip },
        Direction::Reply => FlowKey { proto: n.proto, src: n.backend, dst: n.local },
    };
    let mut live: Vec<Option<SessionId>> = vec![None; flows.len()];
    let mut pick = || (crate::mix::splitmix64(&mut rng) % flows.len() as u64) as usize;
    let (mut hinted_hits, mut now) = (0, 0);
    for _ in 0..5_000 {
        now += 1;
        let batch: Vec<(usize, Direction)> =
            (0..8).map(|i| (pick(), if i % 3 == 0 { Direction::Reply } else { Direction::Forward })).collect();
        let hints: Vec<Hint> = batch.iter().map(|&(f, dir)| t.hint(t.prefetch_index(&key(&flows[f], dir)))).collect();
        for _ in 0..3 {
            let f = pick();
            match live[f] {
                Some(id) => {
                    t.remove(id);
                    live[f] = None;
                }
                None => live[f] = t.insert(flows[f], now).ok(),
            }
        }
        for (&(f, dir), &hint) in batch.iter().zip(&hints) {
            let k = key(&flows[f], dir);
            let expected = t.lookup(&k);
            assert_eq!(t.lookup_hinted(Some(hint), &k), expected, "flow {f} {dir:?}");
            assert_eq!(expected, live[f].map(|id| (id, dir)));
            hinted_hits += usize::from(expected.is_some());
        }
    }
    assert!(hinted_hits > 10_000, "sessions were found: {hinted_hits}");
}

/// The expiry walk looks ahead along a slot's list (records, links, index slots of the sessions
/// to come, their hashes carried to their removal): with a long list of which every third
/// session was seen again, walked in small budgets and ending mid-walk, exactly the idle ones
/// go, and every key of the others, and none of theirs, is still found.
#[test]
fn expiry_looking_ahead_removes_exactly_the_idle_and_keeps_the_index_whole() {
    let mut t = table(2_000);
    let ids: Vec<SessionId> =
        (0..1_500u16).map(|i| t.insert(new_session(UDP, 1_000 + i, 20_000 + i, 0), 0).expect("room")).collect();
    for (i, &id) in ids.iter().enumerate() {
        if i % 3 == 1 {
            assert_eq!(t.touch(id, Direction::Reply, 0, 5_000), Touch::Ok);
        }
    }
    let mut gone = Vec::new();
    for budget in [1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144].into_iter().cycle().take(200) {
        t.expire(10_100, budget, |s| gone.push(s.client.port));
    }
    gone.sort_unstable();
    let idle: Vec<u16> = (0..1_500u16).filter(|i| i % 3 != 1).map(|i| 1_000 + i).collect();
    assert_eq!(gone, idle);
    for i in 0..1_500u16 {
        let s = new_session(UDP, 1_000 + i, 20_000 + i, 0);
        let forward = FlowKey { proto: UDP, src: s.client, dst: s.vip };
        let reply = FlowKey { proto: UDP, src: s.backend, dst: s.local };
        let kept = i % 3 == 1;
        assert_eq!(t.lookup(&forward).is_some(), kept, "forward key of {i}");
        assert_eq!(t.lookup(&reply).is_some(), kept, "reply key of {i}");
    }
    assert_eq!(t.len(), 500);
    assert_eq!(t.index_entries(), 1_000, "each removal took both keys out of the index");
}

/// `has_wildcards` says whether any live session has the unspecified backend (a per-datagram
/// session's), whichever way sessions go: removed, expired.
#[test]
fn wildcards_are_counted_while_they_live() {
    let mut t = table(8);
    let plain = t.insert(new_session(UDP, 1000, 2000, 0), 0).unwrap();
    assert!(!t.has_wildcards());
    let wildcard = |client_port, local_port| NewSession {
        backend: Endpoint::new(Ipv4Addr::UNSPECIFIED, 0),
        ..new_session(UDP, client_port, local_port, 0)
    };
    let first = t.insert(wildcard(1001, 2001), 0).unwrap();
    t.insert(wildcard(1002, 2002), 5).unwrap();
    assert!(t.has_wildcards());
    t.remove(first);
    assert!(t.has_wildcards(), "one is left");
    t.remove(plain);
    assert!(t.has_wildcards());
    let later = 2 * test_timeouts().udp.as_millis() as u64;
    assert_eq!(t.expire(later, usize::MAX, |_| {}), 1);
    assert!(!t.has_wildcards(), "the last one expired");
    assert!(t.is_empty());
}

/// Walks of a chunk at a time (as a worker expires between bursts) expire what one walk would,
/// in the same order, and leave the index empty.
#[test]
fn expiry_a_chunk_at_a_time_is_expiry_all_at_once() {
    let mut t = table(64);
    for i in 0..50 {
        t.insert(new_session(UDP, 1000 + i, 2000 + i, 0), u64::from(i) * 10).unwrap();
    }
    let later = 2 * test_timeouts().udp.as_millis() as u64 + 500;
    let mut gone = Vec::new();
    for _ in 0..50 {
        if t.expire(later, 3, |s| gone.push(s.client.port)) == 0 {
            break;
        }
    }
    assert_eq!(gone, (1000..1050).collect::<Vec<u16>>());
    assert_eq!(t.index_entries(), 0);
}
