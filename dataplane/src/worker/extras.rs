//! What a worker does for the packets FULLNAT leaves more work for (`Step::ForwardExtra`,
//! `Step::Absorbed`, `Step::TooBig`): the client's address put into datagrams and segments
//! (`client_address`), segments FULLNAT writes on its own (PROXY headers, resets, the SYN
//! proxy's handshakes), the SYN proxy's answers and the client packets it holds meanwhile.

use super::*;

/// `nat::proxy::insert_udp_header` or `insert_tcp_header`.
type InsertHeader = fn(&mut [u8], usize, &[u8]) -> Result<u16, crate::nat::Refusal>;

/// Client packets a worker holds while the SYN proxy makes backend handshakes, and for how
/// long at most (the SYN to the backend goes out at most `MAX_SYNS` times over 7 s; a client
/// retransmits what was dropped).
pub(super) const HELD_FOR_HANDSHAKES: usize = 256;
const HOLD_MS: u64 = 8000;

/// A client packet waiting for its session's backend handshake (`Extra::Hold`).
pub(super) struct Held {
    session: SessionId,
    link: usize,
    since: u64,
    m: Mbuf,
}

impl Worker {
    /// A datagram rewritten for its backend, which gets the client's address before its
    /// payload: the link, IP and UDP headers move into the mbuf's headroom and the header goes
    /// in between; a datagram then too big for the link leaves as two fragments (`fullnat`
    /// answered those that may not be fragmented).
    pub(super) fn forward_with_header(
        &mut self,
        snap: &Snapshot,
        mut m: Mbuf,
        hop: Hop,
        header: ClientHeader,
        service: u16,
        now: u64,
    ) {
        let tcp = m.data().get(ETH + 9) == Some(&crate::wire::ipv4::protocol::TCP);
        let (bytes, insert): (_, InsertHeader) = if tcp {
            (header.proxy_v2(crate::wire::proxy::Transport::Tcp), crate::nat::proxy::insert_tcp_header)
        } else {
            (header.proxy_v2_udp(), crate::nat::proxy::insert_udp_header)
        };
        if !m.prepend(bytes.len() as u16) {
            self.setup.counters.count_drop(DropReason::TooBig, 1);
            self.client_address(service, ClientAddressResult::NoRoom);
            return;
        }
        let total = match insert(m.data_mut(), ETH, &bytes) {
            Ok(total) => usize::from(total),
            Err(refusal) => return self.setup.counters.count_drop(refusal.into(), 1),
        };
        // Ethernet padding of a short frame would now follow the datagram: cut it.
        m.set_len((ETH + total) as u16);
        let mtu = crate::fullnat::mtu_of(snap, hop);
        if total <= usize::from(mtu) {
            if !tcp {
                self.client_address(service, ClientAddressResult::Added); // TCP: counted by FULLNAT
            }
            return self.transmit(snap, m, hop, now);
        }
        let Some(mut rest) = Mbuf::alloc(self.setup.pool) else {
            return self.setup.counters.count_drop(DropReason::NoMbuf, 1);
        };
        let Some(buf) = rest.append(ETH as u16 + mtu) else {
            return self.setup.counters.count_drop(DropReason::TooBig, 1);
        };
        buf[..ETH].copy_from_slice(&m.data()[..ETH]);
        match crate::nat::proxy::split(&mut m.data_mut()[ETH..], usize::from(mtu), &mut buf[ETH..]) {
            Ok((first, second)) => {
                m.set_len((ETH + first) as u16);
                rest.set_len((ETH + second) as u16);
                self.client_address(service, ClientAddressResult::Fragmented);
                self.transmit(snap, m, hop, now);
                self.transmit(snap, rest, hop, now);
            }
            Err(_) => self.setup.counters.count_drop(DropReason::TooBig, 1),
        }
    }

    /// A client's segment of a `toa` session: the option goes first among its options (the
    /// headers before them move into the headroom by what the options grow).
    pub(super) fn forward_with_toa(
        &mut self,
        snap: &Snapshot,
        mut m: Mbuf,
        hop: Hop,
        client: Endpoint,
        service: u16,
        now: u64,
    ) {
        const ROOM: usize = crate::nat::toa::LEN;
        if !m.prepend(ROOM as u16) {
            self.setup.counters.count_drop(DropReason::TooBig, 1);
            return self.client_address(service, ClientAddressResult::NoRoom);
        }
        match crate::nat::toa::insert(m.data_mut(), ETH, ROOM, (client.ip, client.port)) {
            Ok((start, total, result)) => {
                m.adj(start as u16);
                m.set_len((ETH + usize::from(total)) as u16);
                self.client_address(
                    service,
                    match result {
                        crate::nat::toa::Insert::Added => ClientAddressResult::Added,
                        crate::nat::toa::Insert::SackDropped(_) => ClientAddressResult::SackDropped,
                        crate::nat::toa::Insert::NoRoom => ClientAddressResult::NoRoom,
                    },
                );
                self.transmit(snap, m, hop, now);
            }
            Err(refusal) => self.setup.counters.count_drop(refusal.into(), 1),
        }
    }

    /// Sends a segment FULLNAT writes on its own (a PROXY header, a reset) to its next hop.
    pub(super) fn emit(&mut self, snap: &Snapshot, e: &Emit, now: u64) {
        let payload = e.payload();
        let payload = payload.as_ref().map_or(&[][..], |p| &p[..]);
        let Some(mut m) = Mbuf::alloc(self.setup.pool) else {
            return self.setup.counters.count_drop(DropReason::NoMbuf, 1);
        };
        let len =
            ipv4::MIN_HEADER_LEN + crate::wire::tcp::HEADER_LEN + e.segment.options.as_slice().len() + payload.len();
        let Some(buf) = m.append((ETH + len) as u16) else { return };
        buf[12..14].copy_from_slice(&[0x08, 0x00]);
        if crate::nat::shift::build(&e.segment, payload, &mut buf[ETH..]).is_ok() {
            self.transmit(snap, m, e.hop, now);
        }
    }

    /// What FULLNAT left to do for a packet it took in (`Step::Absorbed`), which goes nowhere.
    pub(super) fn absorbed(&mut self, snap: &Snapshot, link: usize, m: &Mbuf, extra: Option<Extra>, now: u64) {
        match extra {
            Some(Extra::First(first)) => self.emit(snap, &first, now),
            Some(Extra::Answer(segment)) => self.answer(snap, link, m, &segment),
            Some(Extra::Release { session, first }) => {
                self.emit(snap, &first, now);
                self.release(snap, session, now);
            }
            _ => {}
        }
    }

    /// Sends `segment` back where the frame `to` came from, in a frame of its own (the SYN
    /// proxy's answer when the SYN's frame had no room for it).
    pub(super) fn answer(&mut self, snap: &Snapshot, link: usize, to: &Mbuf, segment: &crate::nat::shift::Segment) {
        let Some(mut m) = Mbuf::alloc(self.setup.pool) else {
            return self.setup.counters.count_drop(DropReason::NoMbuf, 1);
        };
        let len = ipv4::MIN_HEADER_LEN + crate::wire::tcp::HEADER_LEN + segment.options.as_slice().len();
        let Some(buf) = m.append((ETH + len) as u16) else { return };
        buf[..ETH].copy_from_slice(&to.data()[..ETH]);
        if crate::nat::shift::build(segment, &[], &mut buf[ETH..]).is_ok() {
            bounce(buf, snap.links[link].mac);
            self.send(link, m);
        }
    }

    /// Keeps a client's packet of a SYN-proxied session until its backend handshake is done.
    pub(super) fn hold(&mut self, session: SessionId, link: usize, m: Mbuf, now: u64) {
        if self.held.len() < HELD_FOR_HANDSHAKES {
            self.held.push(Held { session, link, since: now, m });
        } else {
            self.setup.counters.count_drop(DropReason::HoldFull, 1);
        }
    }

    /// The packets held for `session`, in their order, through FULLNAT again: its handshake is
    /// done.
    pub(super) fn release(&mut self, snap: &Snapshot, session: SessionId, now: u64) {
        let mut i = 0;
        while i < self.held.len() {
            if self.held[i].session == session {
                let held = self.held.remove(i);
                self.fullnat(snap, held.link, held.m, now, false, None);
            } else {
                i += 1;
            }
        }
    }

    /// Headers due again and resets from FULLNAT's timers (only while headers are in flight).
    pub(super) fn resend_headers(&mut self, snap: &Snapshot, now: u64) {
        // Held packets whose handshake never finished (the backend gave no answer in time).
        if !self.held.is_empty() {
            let before = self.held.len();
            self.held.retain(|h| now.saturating_sub(h.since) < HOLD_MS);
            self.setup.counters.count_drop(DropReason::NoSession, (before - self.held.len()) as u64);
        }
        self.nat.resend_headers(now, &self.setup.counters, &mut self.emits);
        if self.emits.is_empty() {
            return;
        }
        let emits = std::mem::take(&mut self.emits);
        for e in &emits {
            self.emit(snap, e, now);
        }
        self.emits = emits;
        self.emits.clear();
    }

    #[inline]
    pub(super) fn client_address(&self, service: u16, result: ClientAddressResult) {
        self.setup.counters.client_address(service, result);
    }
}
