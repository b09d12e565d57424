//! ICMP errors a worker originates: time exceeded for a packet whose TTL ran out here (from the
//! link's host address) and fragmentation needed for one too big with DF set (from the address
//! it was sent to, a VIP). At most `ICMP_ERRORS_PER_SECOND` a second (RFC 1812 4.3.2.8): TTL-1
//! floods to a VIP must not turn Sluice into an amplifier.

use super::{bounce, Worker, ETH};
use crate::counters::DropReason;
use crate::dpdk::Mbuf;
use crate::snapshot::Snapshot;
use crate::wire::ipv4;

/// ICMP errors a worker sends per second at most.
pub(super) const ICMP_ERRORS_PER_SECOND: u32 = 100;

/// What went wrong with the offending packet.
#[derive(Debug, Clone, Copy)]
pub(super) enum IcmpError {
    TimeExceeded,
    /// With the next hop's MTU.
    FragNeeded {
        mtu: u16,
    },
}

/// Allows `per_second` events a second, refilled whole each second.
pub(super) struct TokenBucket {
    per_second: u32,
    left: u32,
    second: u64,
}

impl TokenBucket {
    pub(super) fn new(per_second: u32) -> TokenBucket {
        TokenBucket { per_second, left: 0, second: u64::MAX }
    }

    pub(super) fn take(&mut self, now_ms: u64) -> bool {
        if now_ms / 1000 != self.second {
            self.second = now_ms / 1000;
            self.left = self.per_second;
        }
        let ok = self.left > 0;
        self.left = self.left.saturating_sub(1);
        ok
    }
}

impl Worker {
    /// Sends `error` about `offending` back to where it came from, within the budget.
    pub(super) fn icmp_error(&mut self, snap: &Snapshot, link: usize, offending: &Mbuf, error: IcmpError, now: u64) {
        if !self.icmp_budget.take(now) {
            return;
        }
        let frame = offending.data();
        let Ok(ip) = ipv4::Packet::new_checked(&frame[ETH..]) else { return };
        let from = match error {
            IcmpError::TimeExceeded => match snap.links[link].source_for(ip.src()) {
                Some(source) => source,
                None => return,
            },
            IcmpError::FragNeeded { .. } => ip.dst(),
        };
        let Some(mut m) = Mbuf::alloc(self.setup.pool) else {
            self.setup.counters.count_drop(DropReason::NoMbuf, 1);
            return;
        };
        let Some(buf) = m.append(ETH as u16 + 576) else { return };
        let built = match error {
            IcmpError::TimeExceeded => crate::nat::time_exceeded(&frame[ETH..], from, &mut buf[ETH..]),
            IcmpError::FragNeeded { mtu } => crate::nat::frag_needed(&frame[ETH..], from, mtu, &mut buf[ETH..]),
        };
        let Ok(len) = built else { return };
        buf[..ETH].copy_from_slice(&frame[..ETH]);
        bounce(buf, snap.links[link].mac);
        if m.set_len((ETH + len) as u16) {
            if let IcmpError::TimeExceeded = error {
                self.setup.counters.icmp_time_exceeded_sent.add(1);
            }
            self.send(link, m);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::TokenBucket;

    #[test]
    fn the_bucket_refills_each_second() {
        let mut b = TokenBucket::new(2);
        assert_eq!([b.take(5), b.take(6), b.take(7)], [true, true, false]);
        assert!(b.take(1000));
    }
}
