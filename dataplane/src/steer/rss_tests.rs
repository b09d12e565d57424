//! Tests of `rss`: chosen ports land on their owner, ports spread evenly over queues, and the
//! search is bounded and gives back what it rejects.

use std::net::{Ipv4Addr, SocketAddrV4};

use super::*;
use crate::laddr::{PortPool, DEFAULT_PORTS};
use crate::steer::toeplitz::MS_DEFAULT_KEY;

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// DPDK's default redirection table: entry `i` on queue `i % queues`.
fn round_robin(entries: usize, queues: u16) -> Vec<u16> {
    (0..entries).map(|i| (i % usize::from(queues)) as u16).collect()
}

fn random_backend(state: &mut u64) -> SocketAddrV4 {
    let r = splitmix(state);
    SocketAddrV4::new(Ipv4Addr::from(r as u32), (r >> 32) as u16)
}

fn random_key(state: &mut u64) -> Vec<u8> {
    (0..40).map(|_| splitmix(state) as u8).collect()
}

#[test]
fn every_chosen_port_lands_on_its_owner() {
    let mut state = 1;
    for queues in [2u16, 4, 8] {
        for round in 0..6 {
            let key = if round % 2 == 0 { MS_DEFAULT_KEY.to_vec() } else { random_key(&mut state) };
            let steering = RssSteering::new(&key, round_robin(128, queues));
            let local = Ipv4Addr::from(splitmix(&mut state) as u32);
            let owner = (splitmix(&mut state) % u64::from(queues)) as u16;
            let bound = steering.tries_bound(owner);
            assert_eq!(bound, 16 * u32::from(queues));
            let mut pool = PortPool::new(local, DEFAULT_PORTS, splitmix(&mut state));
            let (mut chosen, mut tries) = (0u32, 0u32);
            for _ in 0..300 {
                let backend = random_backend(&mut state);
                let got =
                    steering.choose_port(backend, local, owner, bound, &mut pool).expect("a port within the bound");
                assert!(steering.lands_on(backend, local, got.port, owner));
                assert_eq!(steering.queue(*backend.ip(), local, backend.port(), got.port), owner);
                assert!((1..=bound).contains(&got.tries));
                chosen += 1;
                tries += got.tries;
                assert_eq!(pool.free(), pool.size() - chosen, "every rejected port given back");
            }
            let mean = f64::from(tries) / f64::from(chosen);
            assert!(
                mean > 0.6 * f64::from(queues) && mean < 1.5 * f64::from(queues),
                "mean tries {mean} for {queues} queues"
            );
        }
    }
}

#[test]
fn ports_spread_evenly_over_queues() {
    let mut state = 2;
    for queues in [2u16, 4, 8] {
        for round in 0..4 {
            let key = if round == 0 { MS_DEFAULT_KEY.to_vec() } else { random_key(&mut state) };
            let steering = RssSteering::new(&key, round_robin(128, queues));
            let backend = random_backend(&mut state);
            let local = Ipv4Addr::from(splitmix(&mut state) as u32);
            let mut landed = vec![0u32; usize::from(queues)];
            for port in DEFAULT_PORTS {
                landed[usize::from(steering.queue(*backend.ip(), local, backend.port(), port))] += 1;
            }
            let ports = DEFAULT_PORTS.len() as f64;
            for (queue, &n) in landed.iter().enumerate() {
                let fraction = f64::from(n) / ports;
                let expected = 1.0 / f64::from(queues);
                assert!((fraction - expected).abs() < 0.01, "queue {queue} of {queues}: {fraction}");
                assert_eq!(steering.share(queue as u16), 128 / u32::from(queues));
            }
        }
    }
}

#[test]
fn the_search_is_bounded_and_gives_back_every_rejected_port() {
    let steering = RssSteering::new(&MS_DEFAULT_KEY, round_robin(128, 4));
    let backend = SocketAddrV4::new(Ipv4Addr::new(10, 1, 0, 7), 80);
    let local = Ipv4Addr::new(198, 18, 1, 100);
    let owner = 2;
    // Only ports that land elsewhere: the search stops at the bound.
    let misses: Vec<u16> = (1024..4096).filter(|&p| !steering.lands_on(backend, local, p, owner)).collect();
    let mut candidates = misses.iter().copied();
    let mut rejected = Vec::new();
    let result = steering.choose_port_with(backend, local, owner, 10, || candidates.next(), |p| rejected.push(p));
    assert_eq!(result, Err(PortChoiceError::NoneLanded { tries: 10 }));
    assert_eq!(rejected, misses[..10]);

    // Too few candidates: the pool runs dry first.
    let mut candidates = misses[..3].iter().copied();
    let mut rejected = Vec::new();
    let result = steering.choose_port_with(backend, local, owner, 10, || candidates.next(), |p| rejected.push(p));
    assert_eq!(result, Err(PortChoiceError::PoolEmpty { tries: 3 }));
    assert_eq!(rejected, misses[..3]);

    // A landing port after some misses: taken, the misses given back.
    let hit = (1024..4096).find(|&p| steering.lands_on(backend, local, p, owner)).unwrap();
    let mut candidates = misses[..5].iter().copied().chain([hit]);
    let mut rejected = Vec::new();
    let result = steering.choose_port_with(backend, local, owner, 10, || candidates.next(), |p| rejected.push(p));
    assert_eq!(result, Ok(SteeredPort { port: hit, tries: 6 }));
    assert_eq!(rejected, misses[..5]);

    // No bound, no search.
    let result = steering.choose_port_with(backend, local, owner, 0, || Some(hit), |_| panic!("nothing taken"));
    assert_eq!(result, Err(PortChoiceError::NoneLanded { tries: 0 }));
}

#[test]
fn an_owner_outside_the_table_takes_nothing() {
    let steering = RssSteering::new(&MS_DEFAULT_KEY, round_robin(128, 2));
    assert_eq!((steering.share(2), steering.tries_bound(2), steering.share(60000)), (0, 0, 0));
    let mut pool = PortPool::new(Ipv4Addr::new(10, 0, 0, 1), DEFAULT_PORTS, 1);
    let backend = SocketAddrV4::new(Ipv4Addr::new(10, 1, 0, 7), 80);
    let result = steering.choose_port(backend, Ipv4Addr::new(10, 0, 0, 1), 2, 1000, &mut pool);
    assert_eq!(result, Err(PortChoiceError::NotInReta));
    assert_eq!(pool.free(), pool.size());
}

#[test]
fn uneven_tables_and_ports_without_rss() {
    // Queue 0 has 3 of 4 entries, queue 1 one.
    let steering = RssSteering::new(&MS_DEFAULT_KEY, vec![0, 0, 1, 0]);
    assert_eq!((steering.tries_bound(0), steering.tries_bound(1)), (22, 64));
    let no_rss = RssSteering::new(&MS_DEFAULT_KEY, Vec::new());
    assert_eq!(no_rss.reta(), [0]);
    let backend = SocketAddrV4::new(Ipv4Addr::new(10, 1, 0, 7), 80);
    let local = Ipv4Addr::new(198, 18, 1, 100);
    assert!((0..=65535).all(|p| no_rss.lands_on(backend, local, p, 0)));
    assert_eq!(no_rss.tries_bound(0), 16);
    assert_eq!(no_rss.queue_by_addresses(*backend.ip(), local), 0);
}

#[test]
fn queues_follow_the_microsoft_hash() {
    // 66.9.149.187:2794 -> 161.142.100.80:1766 hashes to 0x51ccc178 (with ports) and to
    // 0x323e8fc2 (addresses only): with 128 entries, entries 0x78 and 0x42.
    let reta: Vec<u16> = (0..128).collect();
    let steering = RssSteering::new(&MS_DEFAULT_KEY, reta);
    let (src, dst) = (Ipv4Addr::new(66, 9, 149, 187), Ipv4Addr::new(161, 142, 100, 80));
    assert_eq!(steering.hash(src, dst, 2794, 1766), 0x51cc_c178);
    assert_eq!(steering.queue(src, dst, 2794, 1766), 0x78);
    assert_eq!(steering.queue_by_addresses(src, dst), 0x42);
    assert!(steering.lands_on(SocketAddrV4::new(src, 2794), dst, 1766, 0x78));
    assert_eq!(steering.key(), MS_DEFAULT_KEY);
}
