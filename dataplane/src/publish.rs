//! Handing a new snapshot to a worker, and its old one back, without locks or waits.
//!
//! Each worker has a `Mailbox`: the control core puts an `Update` (the snapshot and the
//! worker's part built for it) in `inbox`; the worker takes it between two bursts, so every
//! packet sees one whole snapshot; it acknowledges the generation in `seen` and returns what it
//! replaced through `outbox`, which the control core empties and frees. A retired snapshot is
//! therefore freed on the control core once every worker has moved on (the last `Arc` held
//! by a worker comes back through its outbox). The control core publishes the next update only
//! after every worker acknowledged the previous one, so one slot each way suffices.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crossbeam_queue::ArrayQueue;

use crate::fullnat::WorkerPart;
use crate::snapshot::Snapshot;

pub struct Update {
    pub snapshot: Arc<Snapshot>,
    pub part: WorkerPart,
}

pub struct Mailbox {
    inbox: ArrayQueue<Update>,
    outbox: ArrayQueue<Update>,
    seen: AtomicU64,
}

impl Mailbox {
    /// A mailbox for a worker that starts on generation `generation`.
    pub fn new(generation: u64) -> Mailbox {
        Mailbox { inbox: ArrayQueue::new(1), outbox: ArrayQueue::new(2), seen: AtomicU64::new(generation) }
    }

    /// Control core: offers `update`; gives it back if the worker has not taken the last one.
    pub fn post(&self, update: Update) -> Result<(), Update> {
        self.inbox.push(update)
    }

    /// Control core: what a worker handed back, to be dropped here.
    pub fn collect(&self) -> Option<Update> {
        self.outbox.pop()
    }

    /// The generation the worker runs on.
    pub fn seen(&self) -> u64 {
        self.seen.load(Ordering::Acquire)
    }

    /// Worker: the next update, if one is waiting (an atomic load when none is).
    #[inline]
    pub fn take(&self) -> Option<Update> {
        self.inbox.pop()
    }

    /// Worker: acknowledges `generation` and returns what it replaced. The outbox has room
    /// because the control core posts one update at a time and collects before posting.
    pub fn retire(&self, generation: u64, old: Update) {
        self.seen.store(generation, Ordering::Release);
        if let Err(old) = self.outbox.push(old) {
            // Cannot happen with the protocol above; dropping here would only free on the worker.
            drop(old);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fullnat::PoolLayout;
    use crate::route::Routes;
    use crate::session::Timeouts;

    fn snapshot(generation: u64) -> Arc<Snapshot> {
        let routes = Routes::new(&[], &[]).unwrap();
        let mut s = Snapshot::from_specs(Vec::new(), &[], routes, Timeouts::default());
        s.generation = generation;
        Arc::new(s)
    }

    fn update(generation: u64) -> Update {
        let snapshot = snapshot(generation);
        let part = PoolLayout::new(0, 1, 64).part(&snapshot);
        Update { snapshot, part }
    }

    #[test]
    fn a_snapshot_is_retired_to_the_control_core_once_the_worker_moved_on() {
        let mailbox = Mailbox::new(1);
        let first = snapshot(1);
        let worker_holds = first.clone();
        assert!(mailbox.take().is_none(), "nothing posted: a worker's check costs nothing");

        mailbox.post(update(2)).ok().expect("room for one update");
        assert!(mailbox.post(update(3)).is_err(), "one at a time: the control core waits for the ack");
        assert_eq!(mailbox.seen(), 1);

        // The worker switches between bursts and hands the old one back.
        let new = mailbox.take().expect("posted");
        assert_eq!(new.snapshot.generation, 2);
        mailbox.retire(2, Update { snapshot: worker_holds, part: new.part });
        assert_eq!(mailbox.seen(), 2);

        // The control core frees it: the last reference is dropped here, not on the worker.
        let retired = mailbox.collect().expect("handed back");
        assert_eq!(retired.snapshot.generation, 1);
        assert_eq!(Arc::strong_count(&retired.snapshot), 2, "the control core's and the retired copy");
        drop(first);
        assert_eq!(Arc::strong_count(&retired.snapshot), 1, "freed when the control core drops it");
        assert!(mailbox.post(update(3)).is_ok(), "room again after the ack");
    }
}
