//! Randomized test of `SessionTable` against a model built on `std::collections::HashMap`:
//! thousands of inserts, lookups, touches, removes and expiries over a small key space (so
//! that duplicates, full tables and hash neighbours are common), checked step by step.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use super::state::next_state;
use super::table_tests::test_timeouts;
use super::*;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Clone, Copy)]
struct Modelled {
    id: SessionId,
    reply: FlowKey,
    state: State,
    last_seen_ms: u64,
    packets: [u64; 2],
}

#[derive(Default)]
struct Model {
    by_forward: HashMap<FlowKey, Modelled>,
    forward_of_reply: HashMap<FlowKey, FlowKey>,
    /// The forward keys again, to pick from in an order that does not depend on the hasher.
    live: Vec<FlowKey>,
}

impl Model {
    fn timeout_ms(state: State) -> u64 {
        test_timeouts().by_state()[state as usize].as_millis() as u64
    }

    fn remove(&mut self, forward: &FlowKey) -> Modelled {
        let m = self.by_forward.remove(forward).expect("modelled session");
        self.forward_of_reply.remove(&m.reply);
        let at = self.live.iter().position(|k| k == forward).expect("listed session");
        self.live.swap_remove(at);
        m
    }

    fn pick(&self, rng: &mut Rng) -> FlowKey {
        self.live[rng.below(self.live.len() as u64) as usize]
    }
}

fn random_new(rng: &mut Rng) -> NewSession {
    let proto = if rng.below(2) == 0 { 6 } else { 17 };
    let flags = [tcp_flags::SYN, tcp_flags::ACK, tcp_flags::SYN][rng.below(3) as usize];
    NewSession {
        proto,
        client: Endpoint::new(Ipv4Addr::new(198, 51, 100, rng.below(4) as u8), 1000 + rng.below(40) as u16),
        vip: Endpoint::new(Ipv4Addr::new(192, 0, 2, 1 + rng.below(2) as u8), 80),
        local: Endpoint::new(Ipv4Addr::new(10, 0, 0, 1 + rng.below(2) as u8), 2000 + rng.below(60) as u16),
        backend: Endpoint::new(Ipv4Addr::new(10, 0, 1, 1 + rng.below(2) as u8), 8080),
        service: rng.below(3) as u16,
        backend_index: rng.below(5) as u16,
        tcp_flags: if proto == 6 { flags } else { 0 },
        hops: Default::default(),
    }
}

fn run(seed: u64, capacity: u32, steps: usize) {
    eprintln!("model run: seed {seed}, capacity {capacity}"); // shown if it fails
    let mut rng = Rng(seed);
    let mut table = SessionTable::with_seed(capacity, test_timeouts(), seed);
    let mut model = Model::default();
    let mut now: u64 = 1_000_000;
    for step in 0..steps {
        match rng.below(100) {
            0..=34 => {
                let new = random_new(&mut rng);
                let forward = FlowKey { proto: new.proto, src: new.client, dst: new.vip };
                let reply = FlowKey { proto: new.proto, src: new.backend, dst: new.local };
                let expected = if model.by_forward.len() == capacity as usize {
                    Err(InsertError::TableFull)
                } else if model.by_forward.contains_key(&forward) || model.forward_of_reply.contains_key(&forward) {
                    Err(InsertError::DuplicateKey(Direction::Forward))
                } else if model.by_forward.contains_key(&reply) || model.forward_of_reply.contains_key(&reply) {
                    Err(InsertError::DuplicateKey(Direction::Reply))
                } else {
                    Ok(())
                };
                let got = table.insert(new, now);
                assert_eq!(got.map(|_| ()), expected, "step {step}: insert {new:?}");
                if let Ok(id) = got {
                    let state = State::initial(new.proto, new.tcp_flags);
                    let m = Modelled { id, reply, state, last_seen_ms: now, packets: [0; 2] };
                    model.by_forward.insert(forward, m);
                    model.forward_of_reply.insert(reply, forward);
                    model.live.push(forward);
                }
            }
            35..=59 => {
                // A key that may or may not be live, in either direction.
                let new = random_new(&mut rng);
                let key = if rng.below(2) == 0 {
                    FlowKey { proto: new.proto, src: new.client, dst: new.vip }
                } else {
                    FlowKey { proto: new.proto, src: new.backend, dst: new.local }
                };
                let expected = if let Some(m) = model.by_forward.get(&key) {
                    Some((m.id, Direction::Forward))
                } else {
                    model.forward_of_reply.get(&key).map(|f| (model.by_forward[f].id, Direction::Reply))
                };
                assert_eq!(table.lookup(&key), expected, "step {step}: lookup {key:?}");
                // As a burst's stages find it (the hint taken just now: nothing changed since).
                let hint = table.hint(table.prefetch_index(&key));
                assert_eq!(table.lookup_hinted(Some(hint), &key), expected, "step {step}: hinted {key:?}");
            }
            60..=79 if !model.by_forward.is_empty() => {
                let forward = model.pick(&mut rng);
                let dir = if rng.below(2) == 0 { Direction::Forward } else { Direction::Reply };
                let flags = [0, tcp_flags::SYN, tcp_flags::SYN | tcp_flags::ACK, tcp_flags::ACK, tcp_flags::FIN]
                    [rng.below(5) as usize];
                let m = model.by_forward.get_mut(&forward).unwrap();
                let got = table.touch(m.id, dir, flags, now);
                match next_state(m.state, dir, flags, m.packets[1] > 0, m.packets[0] > 0) {
                    None => assert_eq!(got, Touch::Reopen),
                    Some(state) => {
                        assert_eq!(got, Touch::Ok);
                        m.state = state;
                        m.last_seen_ms = now;
                        m.packets[dir.index()] += 1;
                    }
                }
                let s = table.get(m.id);
                // A new session is marked stale until its opener looks (`fullnat::sweep`), which
                // no one here does; packets only add the ways they came.
                let seen = (u8::from(m.packets[0] > 0) * Direction::Forward.bit())
                    | (u8::from(m.packets[1] > 0) * Direction::Reply.bit())
                    | SEEN_STALE;
                assert_eq!((s.state, s.last_seen_ms, s.seen), (m.state, m.last_seen_ms, seen));
            }
            80..=87 if !model.by_forward.is_empty() => {
                let forward = model.pick(&mut rng);
                let m = model.remove(&forward);
                let removed = table.remove(m.id);
                assert_eq!(removed.key(Direction::Forward), forward);
            }
            _ => {
                now += rng.below(3000);
                let budget = if rng.below(4) == 0 { rng.below(4) as usize } else { usize::MAX };
                let mut gone = Vec::new();
                let n = table.expire(now, budget, |s| gone.push(s.key(Direction::Forward)));
                assert_eq!(n, gone.len());
                assert!(n <= budget);
                for forward in gone {
                    let m = model.remove(&forward);
                    let idle = now - m.last_seen_ms;
                    assert!(
                        idle > Model::timeout_ms(m.state),
                        "step {step}: expired early, idle {idle} in {:?}",
                        m.state
                    );
                }
                if budget == usize::MAX {
                    // Nothing left that has been overdue since the last tick boundary.
                    let boundary = now / TICK_MS * TICK_MS;
                    for (forward, m) in &model.by_forward {
                        let first_expired = m.last_seen_ms + Model::timeout_ms(m.state) + 1;
                        assert!(first_expired > boundary, "step {step}: {forward:?} overdue at {now}");
                    }
                }
            }
        }
        assert_eq!(table.len(), model.by_forward.len(), "step {step}");
    }
    let mut listed: Vec<SessionId> = table.iter().map(|(id, _)| id).collect();
    let mut modelled: Vec<SessionId> = model.by_forward.values().map(|m| m.id).collect();
    listed.sort_unstable();
    modelled.sort_unstable();
    assert_eq!(listed, modelled);
}

#[test]
fn matches_a_hashmap_model() {
    for seed in 1..=8 {
        run(seed, 64, 20_000);
    }
}

#[test]
fn matches_a_hashmap_model_when_often_full() {
    for seed in 100..=103 {
        run(seed, 8, 10_000);
    }
}
