//! The poll loop of one worker lcore: for each port, receive a burst on this worker's queue,
//! classify, answer ARP for owned addresses, pass the rest to the kernel exception path, and
//! send what the kernel transmits out of the port. Drops are counted by reason.
//!
//! Owns: its queues on every port, its tx buffers, its counters. Must never allocate, lock or
//! block per packet; with `IdleMode::Adaptive` it sleeps briefly only after many empty polls.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::classify::{answer_arp, classify, OwnedAddrs, Verdict};
use crate::counters::{DropReason, WorkerCounters};
use crate::dpdk::{RxBurst, TxQueue};
use crate::wire::MacAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleMode {
    /// Poll without pause: lowest latency, one core at 100%.
    Busy,
    /// After `IDLE_POLLS_BEFORE_SLEEP` empty polls, sleep, doubling up to `MAX_IDLE_SLEEP`.
    Adaptive,
}

const IDLE_POLLS_BEFORE_SLEEP: u32 = 256;
const MIN_IDLE_SLEEP: Duration = Duration::from_micros(16);
const MAX_IDLE_SLEEP: Duration = Duration::from_micros(1024);

/// A port as the data path sees it: its DPDK port, the kernel interface behind it, its MAC and
/// the addresses the data path answers for on it.
#[derive(Debug, Clone)]
pub struct Link {
    pub name: String,
    pub port: u16,
    pub kernel_port: u16,
    pub mac: MacAddr,
    pub owned: OwnedAddrs,
}

/// What every worker reads: the links. Immutable once published.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub links: Vec<Link>,
}

struct LinkQueues {
    port: u16,
    kernel_port: u16,
    to_port: TxQueue,
    to_kernel: TxQueue,
}

pub struct Worker {
    queue: u16,
    snapshot: Arc<Snapshot>,
    queues: Vec<LinkQueues>,
    counters: Arc<WorkerCounters>,
    idle: IdleMode,
    stop: Arc<AtomicBool>,
}

impl Worker {
    /// A worker that polls queue `queue` of every link's port and kernel port.
    pub fn new(
        queue: u16,
        snapshot: Arc<Snapshot>,
        counters: Arc<WorkerCounters>,
        idle: IdleMode,
        stop: Arc<AtomicBool>,
    ) -> Worker {
        let queues = snapshot
            .links
            .iter()
            .map(|l| LinkQueues {
                port: l.port,
                kernel_port: l.kernel_port,
                to_port: TxQueue::new(l.port, queue),
                to_kernel: TxQueue::new(l.kernel_port, queue),
            })
            .collect();
        Worker { queue, snapshot, queues, counters, idle, stop }
    }

    /// Polls until `stop` is set.
    pub fn run(mut self) {
        let mut rx = RxBurst::default();
        let mut empty_polls = 0u32;
        let mut sleep = MIN_IDLE_SLEEP;
        while !self.stop.load(Ordering::Relaxed) {
            let mut work = 0;
            for i in 0..self.queues.len() {
                work += self.poll_link(i, &mut rx);
            }
            self.counters.polls.add(1);
            if work > 0 {
                self.counters.busy_polls.add(1);
                empty_polls = 0;
                sleep = MIN_IDLE_SLEEP;
            } else if self.idle == IdleMode::Adaptive {
                empty_polls += 1;
                if empty_polls >= IDLE_POLLS_BEFORE_SLEEP {
                    std::thread::sleep(sleep);
                    sleep = (sleep * 2).min(MAX_IDLE_SLEEP);
                }
            }
        }
    }

    fn poll_link(&mut self, i: usize, rx: &mut RxBurst) -> usize {
        let link = &self.snapshot.links[i];
        let q = &mut self.queues[i];
        let c = &self.counters;

        let from_port = rx.receive(q.port, self.queue);
        c.rx_packets.add(from_port as u64);
        for mut m in rx.by_ref() {
            match classify(m.data(), &link.owned) {
                Verdict::ArpReply => {
                    if answer_arp(m.data_mut(), link.mac) {
                        c.arp_replies.add(1);
                        c.count_drop(DropReason::TxFull, q.to_port.push(m) as u64);
                    } else {
                        c.count_drop(DropReason::Malformed, 1);
                    }
                }
                Verdict::Kernel => {
                    c.to_kernel.add(1);
                    c.count_drop(DropReason::ExceptionFull, q.to_kernel.push(m) as u64);
                }
                Verdict::Drop(reason) => c.count_drop(reason, 1),
            }
        }

        let from_kernel = rx.receive(q.kernel_port, self.queue);
        c.from_kernel.add(from_kernel as u64);
        for m in rx.by_ref() {
            c.count_drop(DropReason::TxFull, q.to_port.push(m) as u64);
        }

        c.count_drop(DropReason::TxFull, q.to_port.flush() as u64);
        c.count_drop(DropReason::ExceptionFull, q.to_kernel.flush() as u64);
        from_port + from_kernel
    }
}
