//! The client side's receive path: every frame arriving on the client port is classified
//! (`reply::kind`) and either answered in place (ARP for client addresses, the next TCP
//! segment), checked as a reply (latency and sequence recorded), or counted as bad by reason.

use dataplane::dpdk::{Mbuf, RxBurst};

use super::Client;
use crate::arp::{self, Seen};
use crate::cli::Mode;
use crate::reply::{any_stamp, check_udp, kind, BadReason, Kind};
use crate::tcp::{self, ClientStep};
use crate::udp::Stamp;

impl Client {
    /// Receives one burst and handles it; returns how many frames arrived.
    pub(super) fn receive(&mut self, rx: &mut RxBurst, now: u64) -> usize {
        let n = rx.receive(self.port, 0);
        if n == 0 {
            return 0;
        }
        let mut answers = 0u64;
        for m in rx.by_ref() {
            answers += u64::from(self.handle(m, now));
        }
        if self.tx.pending() > 0 {
            let refused = u64::from(self.tx.flush());
            self.counts.tx_refused += refused;
            answers = answers.saturating_sub(refused);
        }
        self.counts.sent += answers;
        n
    }

    /// Handles one frame; returns true if it became a TCP segment to send (counted as sent).
    fn handle(&mut self, m: Mbuf, now: u64) -> bool {
        match kind(m.data()) {
            Kind::Arp => self.on_arp(m),
            Kind::Tcp if self.mode == Mode::Tcp => return self.on_tcp(m, now),
            Kind::Tcp if self.mode == Mode::Syn => match tcp::syn_ack(m.data(), &self.expect, now) {
                Ok(cycles) => {
                    self.counts.received += 1;
                    self.latency.record(self.to_ns.ns(cycles));
                }
                Err(reason) => self.counts.count_bad(reason),
            },
            Kind::NotIp => self.counts.not_ip += 1,
            _ if self.mode == Mode::Ceiling => {
                self.counts.received += 1;
                if let Some(stamp) = any_stamp(m.data(), now) {
                    self.record(stamp, now);
                }
            }
            Kind::Udp if self.mode.is_udp() => match check_udp(m.data(), &self.expect, now) {
                Ok(stamp) => {
                    self.counts.received += 1;
                    self.record(stamp, now);
                }
                Err(reason) => self.counts.count_bad(reason),
            },
            Kind::Udp | Kind::Tcp | Kind::OtherIpv4 => self.counts.count_bad(BadReason::WrongProtocol),
        }
        false
    }

    #[inline]
    fn record(&mut self, stamp: Stamp, now: u64) {
        self.latency.record(self.to_ns.ns(now - stamp.tsc));
        if stamp.seq < self.highest_seq {
            self.counts.reordered += 1;
        } else {
            self.highest_seq = stamp.seq;
        }
    }

    fn on_arp(&mut self, mut m: Mbuf) {
        let space = self.expect.space;
        match arp::handle(m.data_mut(), self.mac, |ip| space.index_of(ip).is_some()) {
            Seen::Answered => {
                self.counts.arp_answered += 1;
                let refused = self.tx.push(m) as usize;
                self.count_refused(refused);
            }
            Seen::From { ip, mac } => {
                self.counts.arp_seen += 1;
                if self.learn_peer && ip == *self.expect.vip.ip() && self.peer != Some(mac) {
                    if self.peer.is_some() {
                        eprintln!("sluice-gen: the VIP {ip} moved to {mac}");
                    }
                    self.peer = Some(mac);
                    self.request.set_peer_mac(mac);
                }
            }
            Seen::Ignored => self.counts.arp_seen += 1,
        }
    }

    fn on_tcp(&mut self, mut m: Mbuf, now: u64) -> bool {
        let len = m.data().len();
        if !m.set_len(len.max(tcp::FRAME_ROOM) as u16) {
            self.counts.count_bad(BadReason::Malformed);
            return false;
        }
        let answer = match tcp::client_step(m.data_mut(), len, self.mac, &self.expect, now) {
            Ok(ClientStep::Request(answer)) => answer,
            Ok(ClientStep::Completed { len: answer, cycles }) => {
                self.counts.connections_completed += 1;
                self.latency.record(self.to_ns.ns(cycles));
                answer
            }
            Ok(ClientStep::Closed) => {
                self.counts.received += 1;
                self.counts.connections_closed += 1;
                return false;
            }
            Err(reason) => {
                self.counts.count_bad(reason);
                return false;
            }
        };
        self.counts.received += 1;
        m.set_len(answer as u16);
        let refused = self.tx.push(m) as usize;
        self.count_refused(refused);
        true
    }
}
