//! Two nodes' views of each other, messages passed between them by hand (through the real
//! encoder and decoder), some lost on purpose.

use std::net::SocketAddrV4;

use super::*;
use crate::sync::wire::{decode, encode, Key};

const HELLO_EVERY: Duration = Duration::from_millis(100);

struct Side {
    local: Local,
    /// Its view of the other node.
    view: Peer,
    applied: Vec<SessionRecord>,
    bulk_complete: usize,
}

fn side(node: u16, epoch: u64, other: [u8; 4]) -> Side {
    Side { local: Local { node, epoch }, view: Peer::new(Ipv4Addr::from(other)), applied: Vec::new(), bulk_complete: 0 }
}

fn key() -> Key {
    Key::new(b"a cluster key of some length").unwrap()
}

fn record(n: u32) -> SessionRecord {
    SessionRecord {
        proto: 17,
        state: 0,
        owner: 1,
        incarnation: 1,
        client: SocketAddrV4::new(Ipv4Addr::new(198, 18, 2, 2), (n % 60_000) as u16 + 1),
        vip: SocketAddrV4::new(Ipv4Addr::new(198, 18, 10, 10), 53),
        local: SocketAddrV4::new(Ipv4Addr::new(198, 18, 12, 1), 1024),
        backend: SocketAddrV4::new(Ipv4Addr::new(198, 18, 1, 2), 53),
        idle_ms: n,
    }
}

/// What `from` sends now, through the wire format; `lose(i)` drops the i-th message.
fn send(from: &mut Side, now: Instant) -> Vec<Message> {
    let msgs = from.view.outgoing(from.local, &Hello::default(), HELLO_EVERY, now);
    let mut buf = Vec::new();
    msgs.iter()
        .map(|m| {
            encode(m, &key(), &mut buf);
            decode(&buf, &key()).expect("round trip")
        })
        .collect()
}

fn deliver(to: &mut Side, msgs: &[Message], now: Instant) -> Vec<Result<(), Refused>> {
    msgs.iter()
        .map(|m| {
            let r = to.view.receive(m, to.local, now)?;
            to.applied.extend(r.records);
            to.bulk_complete += usize::from(r.bulk_complete);
            Ok(())
        })
        .collect()
}

fn pair() -> (Side, Side, Instant) {
    (side(1, 1000, [198, 18, 0, 12]), side(2, 2000, [198, 18, 0, 11]), Instant::now())
}

/// Runs both directions for `steps` of `step` each, losing the messages `lose` picks.
fn run(
    a: &mut Side,
    b: &mut Side,
    mut now: Instant,
    steps: u32,
    step: Duration,
    mut lose: impl FnMut(u16, &Message) -> bool,
) -> Instant {
    for _ in 0..steps {
        let to_b: Vec<Message> = send(a, now).into_iter().filter(|m| !lose(1, m)).collect();
        deliver(b, &to_b, now);
        let to_a: Vec<Message> = send(b, now).into_iter().filter(|m| !lose(2, m)).collect();
        deliver(a, &to_a, now);
        now += step;
    }
    now
}

#[test]
fn records_arrive_once_in_batches_after_at_most_the_flush_delay() {
    let (mut a, mut b, t0) = pair();
    run(&mut a, &mut b, t0, 2, Duration::from_millis(1), |_, _| false);
    for n in 0..100 {
        a.view.push(record(n), false, t0);
    }
    let msgs = send(&mut a, t0 + Duration::from_millis(2));
    let batches = msgs.iter().filter(|m| matches!(m.body, Body::Sessions(_))).count();
    assert_eq!(batches, 2, "two full batches of 38 go at once, the rest waits for the flush delay");
    deliver(&mut b, &msgs, t0);
    run(&mut a, &mut b, t0 + FLUSH_AFTER, 20, Duration::from_millis(5), |_, _| false);
    assert_eq!(b.applied.len(), 100);
    assert_eq!(b.applied, (0..100).map(record).collect::<Vec<_>>());
    assert_eq!(a.view.backlog(), 0, "everything acknowledged");
    assert_eq!(a.view.stats.resends, 0);
}

#[test]
fn lost_batches_are_resent_and_applied_once() {
    let (mut a, mut b, t0) = pair();
    let now = run(&mut a, &mut b, t0, 2, Duration::from_millis(1), |_, _| false);
    for n in 0..200 {
        a.view.push(record(n), false, now);
    }
    let mut count = 0;
    // Lose every third sessions message from a, and every other acknowledgement-bearing hello from b.
    let now = run(&mut a, &mut b, now, 400, Duration::from_millis(10), |from, m| {
        count += 1;
        (from == 1 && matches!(m.body, Body::Sessions(_)) && count % 3 == 0) || (from == 2 && count % 2 == 0)
    });
    let mut got = b.applied.clone();
    got.sort_by_key(|r| r.idle_ms);
    assert_eq!(got, (0..200).map(record).collect::<Vec<_>>(), "every record exactly once");
    assert!(a.view.stats.resends > 0);
    assert_eq!(a.view.backlog(), 0);
    let _ = now;
}

#[test]
fn replays_and_stale_epochs_change_nothing() {
    let (mut a, mut b, t0) = pair();
    run(&mut a, &mut b, t0, 2, Duration::from_millis(1), |_, _| false);
    a.view.push(record(7), false, t0);
    let msgs = send(&mut a, t0 + FLUSH_AFTER);
    assert_eq!(deliver(&mut b, &msgs, t0), vec![Ok(()); msgs.len()]);
    assert_eq!(b.applied.len(), 1);
    assert!(deliver(&mut b, &msgs, t0).iter().all(|r| *r == Err(Refused::Replay)), "the same messages again");
    assert_eq!(b.applied.len(), 1);
    // A newer epoch of a (it restarted): its old messages are stale from then on.
    let mut restarted = Side { local: Local { node: 1, epoch: 1001 }, ..side(1, 1001, [198, 18, 0, 12]) };
    let fresh = send(&mut restarted, t0);
    let r = b.view.receive(&fresh[0], b.local, t0).expect("new epoch");
    assert!(r.new_epoch);
    assert_eq!(b.view.receive(&msgs[0], b.local, t0), Err(Refused::StaleEpoch));
    let reasons: Vec<&str> = b.view.stats.dropped.iter().map(|(r, _)| *r).collect();
    assert_eq!(reasons, ["replay", "stale_epoch"]);
}

#[test]
fn the_replay_window_takes_reordered_messages_once() {
    let mut p = Peer::new(Ipv4Addr::new(198, 18, 0, 12));
    for seq in [5, 3, 4, 1, 70, 6, 7] {
        assert!(p.fresh_seq(seq), "{seq} is new");
    }
    for seq in [5, 3, 70, 6] {
        assert!(!p.fresh_seq(seq), "{seq} again");
    }
    assert!(!p.fresh_seq(2), "too old for the window behind 70");
    assert!(p.fresh_seq(69));
}

#[test]
fn data_far_ahead_is_refused_and_resent_later() {
    let mut p = Peer::new(Ipv4Addr::new(198, 18, 0, 12));
    assert_eq!(p.take_data(1), Ok(true));
    assert_eq!(p.take_data(3), Ok(true));
    assert_eq!(p.take_data(3), Ok(false), "duplicate");
    assert_eq!(p.take_data(66), Err(Refused::OutOfWindow));
    assert_eq!(p.take_data(2), Ok(true));
    assert_eq!((p.rx_ack, p.rx_bits), (3, 0));
    assert_eq!(p.take_data(1), Ok(false));
}

#[test]
fn a_bulk_transfer_completes_once_everything_before_it_arrived() {
    let (mut a, mut b, t0) = pair();
    // b wants a's table (both start wanting each other's).
    let now = run(&mut a, &mut b, t0, 2, Duration::from_millis(1), |_, _| false);
    assert_eq!(a.view.bulk_out, BulkOut::Wanted, "b's hello asked for it");
    a.view.bulk_out = BulkOut::Walking(1);
    for n in 0..90 {
        a.view.push(record(n), true, now);
    }
    a.view.walk_done();
    let mut lost_first = false;
    let now = run(&mut a, &mut b, now, 100, Duration::from_millis(10), |from, m| {
        let first = from == 1 && m.header.data_seq == 1 && !lost_first;
        lost_first |= first;
        first
    });
    assert_eq!(b.bulk_complete, 1, "complete once, after the lost first batch came again");
    assert!(!b.view.want_bulk);
    assert_eq!(b.applied.len(), 90);
    // Its later hellos no longer ask, and a has nothing more to send.
    run(&mut a, &mut b, now, 20, Duration::from_millis(10), |_, _| false);
    assert_eq!(a.view.bulk_out, BulkOut::Idle);
    assert_eq!(b.bulk_complete, 1);
    // An empty table ends its transfer at once.
    assert_eq!(b.view.bulk_out, BulkOut::Wanted, "a asked b too");
    b.view.bulk_out = BulkOut::Walking(1);
    b.view.walk_done();
    run(&mut a, &mut b, now, 5, Duration::from_millis(10), |_, _| false);
    assert_eq!(a.bulk_complete, 1);
}

#[test]
fn overflow_is_counted_and_asks_for_a_resync() {
    let mut p = Peer::new(Ipv4Addr::new(198, 18, 0, 12));
    let now = Instant::now();
    for n in 0..(MAX_QUEUED as u32 + 3) {
        p.push(record(n), false, now);
    }
    assert_eq!(p.backlog(), MAX_QUEUED);
    assert!(p.needs_resync);
    assert_eq!(p.stats.dropped, [("overflow", 3)]);
    assert!(!p.has_room());
}

#[test]
fn at_most_the_window_is_in_flight() {
    let (mut a, _, t0) = pair();
    for n in 0..(MAX_RECORDS * (MAX_UNACKED + 10)) as u32 {
        a.view.push(record(n), false, t0);
    }
    let msgs = send(&mut a, t0 + FLUSH_AFTER);
    let batches = msgs.iter().filter(|m| matches!(m.body, Body::Sessions(_))).count();
    assert_eq!(batches, MAX_UNACKED);
    assert!(send(&mut a, t0 + FLUSH_AFTER).iter().all(|m| matches!(m.body, Body::Hello(_))));
}
