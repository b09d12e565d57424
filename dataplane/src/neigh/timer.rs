//! The neighbour table's timers: two intrusive FIFO deadline lists over slot indices, one for
//! each timer duration (retry and reachable).
//!
//! Every deadline on a list is `now + that list's duration`, so with a non-decreasing clock each
//! list is sorted by deadline just by appending: arming is O(1) (unlink, append), and finding what
//! is due means looking at heads only. Preallocated for every slot in `new`; nothing allocates
//! after. If the clock steps back, a list is merely out of order: timers behind a later head fire
//! late, nothing panics or loops.

const NIL: u32 = u32::MAX;

/// Which list a slot's timer is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Timer {
    Retry = 0,
    Reachable = 1,
}

#[derive(Debug, Clone, Copy)]
struct Link {
    deadline: u64,
    on: Option<Timer>,
    prev: u32,
    next: u32,
}

#[derive(Debug, Clone, Copy)]
struct List {
    head: u32,
    tail: u32,
}

#[derive(Debug)]
pub(super) struct Timers {
    lists: [List; 2],
    links: Vec<Link>,
}

impl Timers {
    /// Room for slots `0..slots`; `slots` must be below `u32::MAX`.
    pub(super) fn new(slots: usize) -> Timers {
        debug_assert!(slots < NIL as usize);
        let unarmed = Link { deadline: 0, on: None, prev: NIL, next: NIL };
        Timers { lists: [List { head: NIL, tail: NIL }; 2], links: vec![unarmed; slots] }
    }

    /// (Re)arms slot `i` to fire at `deadline`, at the tail of `timer`'s list.
    pub(super) fn arm(&mut self, i: usize, timer: Timer, deadline: u64) {
        self.disarm(i);
        let list = &mut self.lists[timer as usize];
        let tail = list.tail;
        list.tail = i as u32;
        if tail == NIL {
            list.head = i as u32;
        } else {
            self.links[tail as usize].next = i as u32;
        }
        self.links[i] = Link { deadline, on: Some(timer), prev: tail, next: NIL };
    }

    pub(super) fn disarm(&mut self, i: usize) {
        let Link { on, prev, next, .. } = self.links[i];
        let Some(timer) = on else { return };
        let list = &mut self.lists[timer as usize];
        if prev == NIL {
            list.head = next;
        } else {
            self.links[prev as usize].next = next;
        }
        if next == NIL {
            list.tail = prev;
        } else {
            self.links[next as usize].prev = prev;
        }
        self.links[i] = Link { deadline: 0, on: None, prev: NIL, next: NIL };
    }

    /// The head of `timer`'s list, disarmed, if its deadline has come.
    pub(super) fn pop_due(&mut self, timer: Timer, now_ms: u64) -> Option<usize> {
        let head = self.lists[timer as usize].head;
        if head == NIL || self.links[head as usize].deadline > now_ms {
            return None;
        }
        self.disarm(head as usize);
        Some(head as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(t: &mut Timers, timer: Timer, now: u64) -> Vec<usize> {
        std::iter::from_fn(|| t.pop_due(timer, now)).collect()
    }

    #[test]
    fn fires_in_deadline_order_and_only_when_due() {
        let mut t = Timers::new(4);
        t.arm(2, Timer::Retry, 10);
        t.arm(0, Timer::Retry, 10);
        t.arm(1, Timer::Retry, 20);
        t.arm(3, Timer::Reachable, 5);
        assert_eq!(drain(&mut t, Timer::Retry, 9), Vec::<usize>::new());
        assert_eq!(drain(&mut t, Timer::Retry, 10), vec![2, 0]);
        assert_eq!(drain(&mut t, Timer::Retry, 100), vec![1]);
        assert_eq!(drain(&mut t, Timer::Reachable, 100), vec![3]);
    }

    #[test]
    fn rearming_moves_and_disarming_unlinks() {
        let mut t = Timers::new(4);
        for i in 0..4 {
            t.arm(i, Timer::Retry, 10);
        }
        t.disarm(1); // middle
        t.disarm(3); // tail
        t.arm(0, Timer::Reachable, 10); // head, to the other list
        t.disarm(1); // twice is harmless
        assert_eq!(drain(&mut t, Timer::Retry, 10), vec![2]);
        assert_eq!(drain(&mut t, Timer::Reachable, 10), vec![0]);
        t.arm(3, Timer::Retry, 30);
        assert_eq!(drain(&mut t, Timer::Retry, 30), vec![3], "an emptied list takes new timers");
    }

    #[test]
    fn a_clock_stepping_back_only_delays() {
        let mut t = Timers::new(2);
        t.arm(0, Timer::Retry, 50);
        t.arm(1, Timer::Retry, 20);
        assert_eq!(drain(&mut t, Timer::Retry, 30), Vec::<usize>::new(), "1 waits behind 0");
        assert_eq!(drain(&mut t, Timer::Retry, 50), vec![0, 1]);
    }
}
