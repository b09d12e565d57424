//! Session listings without stopping a worker: the control core posts an empty `Dump` (its
//! memory allocated there); the worker fills it a few slots at a time between bursts and posts
//! it back when it has walked its whole table (or the dump is full). The control core answers
//! `sluicectl sessions` from the latest complete dump of each worker, so a listing may be up to
//! a dump period old, and never waits on a worker.

use crossbeam_queue::ArrayQueue;

use crate::session::{Endpoint, Session, SessionTable, State};

/// Slots a worker looks at per poll loop while dumping.
pub const SLOTS_PER_LOOP: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionRow {
    pub service: u16,
    pub client: Endpoint,
    pub vip: Endpoint,
    pub local: Endpoint,
    /// Unspecified for a per-datagram session.
    pub backend: Endpoint,
    pub state: State,
    pub created_ms: u64,
    pub last_seen_ms: u64,
}

impl From<&Session> for SessionRow {
    fn from(s: &Session) -> SessionRow {
        SessionRow {
            service: s.service,
            client: s.client,
            vip: s.vip,
            local: s.local,
            backend: s.backend,
            state: s.state,
            created_ms: s.created_ms,
            last_seen_ms: s.last_seen_ms,
        }
    }
}

#[derive(Debug)]
pub struct Dump {
    /// Filled up to its capacity, never beyond (no allocation on the worker).
    pub rows: Vec<SessionRow>,
    /// The worker's clock when the dump was finished.
    pub now_ms: u64,
    /// Sessions the worker had when it finished (rows may hold fewer).
    pub total: usize,
}

impl Dump {
    pub fn with_capacity(rows: usize) -> Dump {
        Dump { rows: Vec::with_capacity(rows), now_ms: 0, total: 0 }
    }
}

/// One worker's dump exchange.
pub struct DumpBox {
    requests: ArrayQueue<Dump>,
    results: ArrayQueue<Dump>,
}

impl Default for DumpBox {
    fn default() -> Self {
        DumpBox { requests: ArrayQueue::new(1), results: ArrayQueue::new(1) }
    }
}

impl DumpBox {
    /// Control core: asks for a dump; false if one is still outstanding.
    pub fn request(&self, empty: Dump) -> bool {
        self.requests.push(empty).is_ok()
    }

    /// Control core: a finished dump, if one came back.
    pub fn result(&self) -> Option<Dump> {
        self.results.pop()
    }
}

/// The worker's side: the dump in progress and where its scan is.
#[derive(Default)]
pub struct Dumper {
    current: Option<(Dump, usize)>,
}

impl Dumper {
    /// One step: takes a request if idle, else scans `SLOTS_PER_LOOP` more slots. Cheap when
    /// no dump is asked for (one queue check).
    #[inline]
    pub fn step(&mut self, exchange: &DumpBox, sessions: &SessionTable, now_ms: u64) {
        let (mut dump, cursor) = match self.current.take() {
            Some(work) => work,
            None => match exchange.requests.pop() {
                Some(mut fresh) => {
                    fresh.rows.clear();
                    (fresh, 0)
                }
                None => return,
            },
        };
        let room = dump.rows.capacity();
        let next = sessions.scan(cursor, SLOTS_PER_LOOP, |s| {
            if dump.rows.len() < room {
                dump.rows.push(SessionRow::from(s));
            }
        });
        if next == 0 || dump.rows.len() >= room {
            dump.now_ms = now_ms;
            dump.total = sessions.len();
            let _ = exchange.results.push(dump);
        } else {
            self.current = Some((dump, next));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{NewSession, Timeouts};
    use std::net::Ipv4Addr;

    fn table(n: u16) -> SessionTable {
        let mut t = SessionTable::with_seed(4096, Timeouts::default(), 7);
        for i in 0..n {
            let e = |d, p| Endpoint::new(Ipv4Addr::new(198, 18, 0, d), p);
            let new = NewSession {
                proto: 17,
                client: e(2, 10000 + i),
                vip: e(10, 53),
                local: e(100, 20000 + i),
                backend: e(3, 53),
                service: 0,
                backend_index: 0,
                tcp_flags: 0,
                hops: Default::default(),
            };
            t.insert(new, 5).unwrap();
        }
        t
    }

    #[test]
    fn a_dump_walks_the_whole_table_a_slice_at_a_time() {
        let t = table(300);
        let (exchange, mut dumper) = (DumpBox::default(), Dumper::default());
        dumper.step(&exchange, &t, 1);
        assert!(exchange.result().is_none(), "nothing asked, nothing done");
        assert!(exchange.request(Dump::with_capacity(1000)));
        assert!(!exchange.request(Dump::with_capacity(1000)), "one outstanding at a time");
        let mut steps = 0;
        let dump = loop {
            dumper.step(&exchange, &t, 9);
            steps += 1;
            if let Some(d) = exchange.result() {
                break d;
            }
            assert!(steps < 100, "bounded");
        };
        assert_eq!(steps, 4096 / SLOTS_PER_LOOP, "one slice per step");
        assert_eq!((dump.rows.len(), dump.total, dump.now_ms), (300, 300, 9));
        assert!(dump.rows.iter().all(|r| r.vip.port == 53 && r.created_ms == 5));
    }

    #[test]
    fn a_full_dump_stops_early_and_counts_all() {
        let t = table(300);
        let (exchange, mut dumper) = (DumpBox::default(), Dumper::default());
        exchange.request(Dump::with_capacity(10));
        let dump = (0..100).find_map(|_| {
            dumper.step(&exchange, &t, 1);
            exchange.result()
        });
        let dump = dump.expect("finished");
        assert_eq!((dump.rows.len(), dump.rows.capacity(), dump.total), (10, 10, 300));
    }
}
