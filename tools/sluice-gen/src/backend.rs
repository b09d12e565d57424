//! The backend side: every backend at once, on the port that faces the balancer's backend link.
//! Answers ARP for any address asked (proxy ARP with the port's MAC), reflects every UDP
//! datagram (`udp::reflect`), and in `tcp` mode answers segments as a server (`tcp::serve`).
//!
//! Owns the backend port's queue 0. Per packet it never allocates, locks or blocks: answers are
//! written into the received mbuf and sent back in the same burst. Runs on its own lcore
//! (`run`, with `--cores 2`) or is polled by the client loop (`poll`, with `--cores 1`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use dataplane::dpdk::{tsc, Mbuf, RxBurst, TxQueue};
use dataplane::wire::MacAddr;

use super::arp::{self, Seen};
use super::reply::{kind, BadReason, Kind};
use super::report::{BackendCounts, SharedBackend};
use super::tcp;
use super::udp::{self, NotReflected};

pub struct Backend {
    port: u16,
    mac: MacAddr,
    /// Answer TCP segments (`--mode tcp`); otherwise they are ignored.
    tcp: bool,
    tx: TxQueue,
    counts: BackendCounts,
    shared: Arc<SharedBackend>,
}

impl Backend {
    pub fn new(port: u16, mac: MacAddr, tcp: bool, shared: Arc<SharedBackend>) -> Backend {
        Backend { port, mac, tcp, tx: TxQueue::new(port, 0), counts: BackendCounts::default(), shared }
    }

    pub fn counts(&self) -> BackendCounts {
        self.counts
    }

    /// Receives one burst and answers it; returns how many frames arrived.
    pub fn poll(&mut self, rx: &mut RxBurst) -> usize {
        let n = rx.receive(self.port, 0);
        if n == 0 {
            return 0;
        }
        self.counts.received += n as u64;
        for m in rx.by_ref() {
            self.answer(m);
        }
        self.counts.tx_refused += u64::from(self.tx.flush());
        n
    }

    /// Polls until `halt`, publishing the counters after every busy poll (its own lcore).
    pub fn run(mut self, halt: &AtomicBool) {
        let mut rx = RxBurst::default();
        let (mut last, mut was_busy) = (tsc(), false);
        while !halt.load(Ordering::Relaxed) {
            let now = tsc();
            if was_busy {
                self.counts.busy_cycles += now - last;
            }
            last = now;
            was_busy = self.poll(&mut rx) > 0;
            if was_busy {
                self.shared.publish(&self.counts);
            }
        }
        self.shared.publish(&self.counts);
    }

    fn answer(&mut self, mut m: Mbuf) {
        let c = &mut self.counts;
        match kind(m.data()) {
            Kind::Udp => match udp::reflect(m.data_mut(), self.mac) {
                Ok(()) => {
                    c.reflected += 1;
                    c.tx_refused += u64::from(self.tx.push(m));
                }
                Err(NotReflected::BadChecksum) => c.bad_checksum += 1,
                Err(NotReflected::Malformed) => c.ignored += 1,
            },
            Kind::Tcp if self.tcp => {
                let len = m.data().len();
                if !m.set_len(len.max(tcp::FRAME_ROOM) as u16) {
                    c.ignored += 1;
                    return;
                }
                match tcp::serve(m.data_mut(), len, self.mac) {
                    Ok(answer_len) => {
                        m.set_len(answer_len as u16);
                        c.tcp_answered += 1;
                        c.tx_refused += u64::from(self.tx.push(m));
                    }
                    Err(BadReason::BadChecksum) => c.bad_checksum += 1,
                    Err(_) => c.ignored += 1,
                }
            }
            Kind::Arp => match arp::handle(m.data_mut(), self.mac, |_| true) {
                Seen::Answered => {
                    c.arp_answered += 1;
                    c.tx_refused += u64::from(self.tx.push(m));
                }
                Seen::From { .. } | Seen::Ignored => c.ignored += 1,
            },
            Kind::Tcp | Kind::OtherIpv4 | Kind::NotIp => c.ignored += 1,
        }
    }
}

/// The backend side as the client loop sees it: polled here (`--cores 1`) or on its own lcore.
pub struct BackendSide<'a> {
    local: Option<&'a mut Backend>,
    rx: RxBurst,
    shared: &'a SharedBackend,
}

impl<'a> BackendSide<'a> {
    pub fn same_lcore(backend: &'a mut Backend, shared: &'a SharedBackend) -> Self {
        BackendSide { local: Some(backend), rx: RxBurst::default(), shared }
    }

    pub fn other_lcore(shared: &'a SharedBackend) -> Self {
        BackendSide { local: None, rx: RxBurst::default(), shared }
    }

    #[inline]
    pub fn poll(&mut self) -> usize {
        match self.local.as_deref_mut() {
            Some(b) => b.poll(&mut self.rx),
            None => 0,
        }
    }

    pub fn counts(&self) -> BackendCounts {
        match self.local.as_deref() {
            Some(b) => b.counts(),
            None => self.shared.read(),
        }
    }
}
