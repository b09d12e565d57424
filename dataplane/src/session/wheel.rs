//! The session slab's links: every session index is either live, filed in exactly one slot of
//! a timing wheel, or free, on the free list. Links are indexes (`u32`), not pointers: 8 bytes
//! a session, and nothing for the allocator to do after construction.
//!
//! The wheel has a power-of-two number of slots, one tick each. Slot heads are sentinel nodes
//! stored after the sessions' links, so the lists are circular and unlinking needs no head.
//! `cursor` is the next tick to process; a live session is filed at a tick in
//! `[cursor, cursor + slots)`: a deadline further out is filed at the far end of that window
//! and simply re-filed when it comes round (the table decides, see `SessionTable::expire`).

/// A free session index has `prev == FREE`; its `next` is the next free index (or `FREE`).
const FREE: u32 = u32::MAX;

use crate::bigmem::BigArray;

#[derive(Clone, Copy, Debug)]
struct Link {
    next: u32,
    prev: u32,
}

#[derive(Clone)]
pub(super) struct Wheel {
    /// `[0, capacity)`: sessions; `[capacity, capacity + slots)`: slot heads.
    links: BigArray<Link>,
    capacity: u32,
    /// `slots - 1`; slots is a power of two.
    mask: u64,
    cursor: u64,
    free_head: u32,
    live: u32,
}

impl Wheel {
    /// `slots` is rounded up to a power of two, at least 2.
    pub(super) fn new(capacity: u32, slots: u32) -> Wheel {
        let slots = slots.max(2).next_power_of_two();
        let total = capacity as usize + slots as usize;
        assert!(total < FREE as usize, "wheel of {total} links is too large");
        let mut links = BigArray::new(total, Link { next: FREE, prev: FREE });
        for (i, link) in links.iter_mut().enumerate().take(capacity as usize) {
            link.next = if i + 1 < capacity as usize { i as u32 + 1 } else { FREE };
        }
        for head in capacity..capacity + slots {
            links[head as usize] = Link { next: head, prev: head };
        }
        Wheel {
            links,
            capacity,
            mask: u64::from(slots) - 1,
            cursor: 0,
            free_head: if capacity > 0 { 0 } else { FREE },
            live: 0,
        }
    }

    pub(super) fn live(&self) -> u32 {
        self.live
    }

    pub(super) fn slots(&self) -> u64 {
        self.mask + 1
    }

    pub(super) fn memory_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.links)
    }

    #[inline(always)]
    pub(super) fn is_live(&self, id: u32) -> bool {
        id < self.capacity && self.links[id as usize].prev != FREE
    }

    /// Takes a free index and files it at `tick`; `None` when all are live.
    #[inline]
    pub(super) fn alloc(&mut self, tick: u64) -> Option<u32> {
        let id = self.free_head;
        if id == FREE {
            return None;
        }
        self.free_head = self.links[id as usize].next;
        self.live += 1;
        self.file(id, tick);
        // The next alloc reads the next free index's link: it loads meanwhile.
        if self.free_head != FREE {
            crate::prefetch::prefetch(&self.links[self.free_head as usize]);
        }
        Some(id)
    }

    /// The index the next `alloc` takes, if any.
    #[inline(always)]
    pub(super) fn next_free(&self) -> Option<u32> {
        (self.free_head != FREE).then_some(self.free_head)
    }

    /// Unfiles a live index and puts it on the free list; `false` (no change) if not live.
    #[inline]
    pub(super) fn release(&mut self, id: u32) -> bool {
        if !self.is_live(id) {
            return false;
        }
        self.unlink(id);
        self.links[id as usize] = Link { next: self.free_head, prev: FREE };
        self.free_head = id;
        self.live -= 1;
        true
    }

    /// Moves a live index to `tick`; no change if not live.
    #[inline]
    pub(super) fn refile(&mut self, id: u32, tick: u64) {
        if self.is_live(id) {
            self.unlink(id);
            self.file(id, tick);
        }
    }

    /// Keeps the cursor near `now_tick` so that catching up never walks more than one turn:
    /// with nothing live it jumps to now; after a stall of more than a turn it moves to the
    /// start of the last turn, which re-labels every slot with a tick <= `now_tick`, so each
    /// slot (and every live session) is still visited before the cursor passes now.
    #[inline]
    pub(super) fn sync(&mut self, now_tick: u64) {
        if self.live == 0 {
            self.cursor = self.cursor.max(now_tick);
        } else if now_tick - self.cursor.min(now_tick) > self.mask {
            self.cursor = now_tick - self.mask;
        }
    }

    /// The first session filed at the cursor's slot, advancing the cursor over empty slots up
    /// to `now_tick`; `None` once every slot up to `now_tick` is empty. The caller unfiles or
    /// re-files what it gets, or the same index comes back.
    #[inline]
    pub(super) fn next_due(&mut self, now_tick: u64) -> Option<u32> {
        while self.cursor <= now_tick {
            let head = self.head(self.cursor);
            let first = self.links[head as usize].next;
            if first != head {
                return Some(first);
            }
            self.cursor += 1;
        }
        None
    }

    /// The index filed after `id` in its slot, `None` if `id` is the slot's last: where an
    /// expiry walk goes next, to look ahead. `id` must be live.
    #[inline(always)]
    pub(super) fn after(&self, id: u32) -> Option<u32> {
        let next = self.links[id as usize].next;
        (next < self.capacity).then_some(next)
    }

    /// Starts loading `id`'s links (an expiry walk's look ahead).
    #[inline(always)]
    pub(super) fn prefetch(&self, id: u32) {
        crate::prefetch::prefetch(&self.links[id as usize]);
    }

    /// Files at `tick`, clamped into the window `[cursor, cursor + slots)`.
    #[inline(always)]
    fn file(&mut self, id: u32, tick: u64) {
        let tick = tick.clamp(self.cursor, self.cursor + self.mask);
        let head = self.head(tick);
        let tail = self.links[head as usize].prev;
        self.links[id as usize] = Link { next: head, prev: tail };
        self.links[tail as usize].next = id;
        self.links[head as usize].prev = id;
    }

    #[inline(always)]
    fn unlink(&mut self, id: u32) {
        let Link { next, prev } = self.links[id as usize];
        self.links[prev as usize].next = next;
        self.links[next as usize].prev = prev;
    }

    #[inline(always)]
    fn head(&self, tick: u64) -> u32 {
        self.capacity + (tick & self.mask) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(wheel: &mut Wheel, now_tick: u64) -> Vec<u32> {
        let mut due = Vec::new();
        while let Some(id) = wheel.next_due(now_tick) {
            assert!(wheel.release(id));
            due.push(id);
        }
        due
    }

    #[test]
    fn alloc_release_and_free_list() {
        let mut wheel = Wheel::new(3, 8);
        assert_eq!(wheel.slots(), 8);
        let ids: Vec<u32> = (0..3).filter_map(|_| wheel.alloc(5)).collect();
        assert_eq!(ids, [0, 1, 2]);
        assert_eq!(wheel.alloc(5), None);
        assert!(wheel.release(1));
        assert!(!wheel.release(1), "double release refused");
        assert!(!wheel.is_live(1));
        assert!(!wheel.is_live(3), "out of range is not live");
        assert_eq!(wheel.next_free(), Some(1));
        assert_eq!(wheel.alloc(6), Some(1));
        assert_eq!(wheel.next_free(), None);
        assert_eq!(wheel.live(), 3);
    }

    #[test]
    fn due_in_tick_order_and_not_before() {
        let mut wheel = Wheel::new(4, 8);
        let a = wheel.alloc(3).unwrap();
        let b = wheel.alloc(1).unwrap();
        let c = wheel.alloc(3).unwrap();
        assert_eq!(drain(&mut wheel, 0), []);
        assert_eq!(drain(&mut wheel, 2), [b]);
        assert_eq!(drain(&mut wheel, 3), [a, c]);
        assert_eq!(wheel.live(), 0);
    }

    #[test]
    fn far_deadlines_clamp_to_the_window_end() {
        let mut wheel = Wheel::new(2, 4);
        let a = wheel.alloc(1000).unwrap();
        assert_eq!(drain(&mut wheel, 2), []);
        assert_eq!(wheel.next_due(3), Some(a), "filed at cursor + 3, the window's last tick");
    }

    #[test]
    fn refile_moves_between_slots() {
        let mut wheel = Wheel::new(2, 8);
        let a = wheel.alloc(2).unwrap();
        wheel.refile(a, 6);
        assert_eq!(drain(&mut wheel, 5), []);
        assert_eq!(drain(&mut wheel, 6), [a]);
        wheel.refile(a, 1); // not live: ignored
        assert_eq!(wheel.live(), 0);
    }

    #[test]
    fn sync_after_a_long_stall_visits_everything_once() {
        let mut wheel = Wheel::new(8, 8);
        let ids: Vec<u32> = (0..8).map(|t| wheel.alloc(t).unwrap()).collect();
        wheel.sync(1_000_000);
        let mut due = drain(&mut wheel, 1_000_000);
        due.sort_unstable();
        assert_eq!(due, ids);
        // An empty wheel jumps straight to now.
        wheel.sync(2_000_000);
        let id = wheel.alloc(0).unwrap();
        assert_eq!(wheel.next_due(1_999_999), None);
        assert_eq!(wheel.next_due(2_000_000), Some(id));
    }
}
