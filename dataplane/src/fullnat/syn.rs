//! The SYN proxy's steps (`synproxy = true`): a SYN answered with a cookie, an ACK with a
//! valid one opening a session and the backend's handshake, the backend's answer completing
//! it. The state and the timers are in `synproxied`, the bytes in `nat::syn`.

use super::synproxied::{self, Answered, CLIENT_SCALE, OFFERED_MSS};
use super::*;
use crate::session::tcp_flags::{ACK, FIN, RST, SYN};
use crate::synproxy::{Flow, SynOptions};
use crate::wire::tcp::{self, Flags};
use crate::wire::{ipv4, read_u32};

impl FullNat {
    /// A TCP packet without a session to a `synproxy` service.
    #[allow(clippy::too_many_arguments)]
    #[cold]
    pub(super) fn syn_proxy(
        &mut self,
        snap: &Snapshot,
        service: usize,
        ip: &mut [u8],
        key: FlowKey,
        flags: u8,
        now_ms: u64,
        c: &WorkerCounters,
    ) -> Step {
        let svc = &snap.services[service];
        let stats = c.services.get(service);
        let count = |result: usize| {
            if let Some(stats) = stats {
                stats.synproxy[result].add(1);
            }
        };
        let ihl = ipv4::header_len(ip);
        let (seq, ack) = (read_u32(ip, ihl + tcp::offset::SEQ), read_u32(ip, ihl + tcp::offset::ACK));
        let flow =
            |client_isn| Flow { client: (key.src.ip, key.src.port), vip: (key.dst.ip, key.dst.port), client_isn };
        if flags & (SYN | ACK | RST | FIN) == SYN {
            if admit::denied(svc, key.src.ip) {
                return Step::Drop(DropReason::Denied);
            }
            let Ok(offer) = nat::syn::offer(ip) else { return Step::Drop(DropReason::Truncated) };
            let cookie = self.cookies.make(&flow(offer.client_isn), offer.mss, now_ms / 1000);
            // Without timestamps nothing but the MSS survives the cookie: no window scale, no
            // SACK offered (as Linux does).
            let offered_scale = self.learned_scale.get(service).copied().unwrap_or(CLIENT_SCALE);
            let (scale, sack, timestamp, ecn) = match offer.tsval {
                Some(tsval) => {
                    let carried = SynOptions {
                        window_scale: offer.window_scale,
                        sack: offer.sack,
                        ecn: offer.ecn,
                        offered_scale,
                    };
                    let scale = offer.window_scale.map(|_| offered_scale);
                    (scale, offer.sack, Some((carried.timestamp(now_ms), tsval)), offer.ecn)
                }
                None => (None, false, None, false),
            };
            // With TOA every client segment may carry 8 more bytes of options.
            let mss =
                if svc.client_address == ClientAddress::Toa { OFFERED_MSS - nat::toa::LEN as u16 } else { OFFERED_MSS };
            let options = nat::syn::Options::syn(mss, scale, sack, timestamp);
            count(0);
            return match nat::syn::answer_syn(ip, cookie, 0xffff, &options, ecn) {
                Ok(ip_len) => Step::Answer { ip_len },
                // A SYN without options in a frame without padding: no room for the answer's.
                Err(Refusal::Truncated) => {
                    let flags = Flags::SYN | Flags::ACK | if ecn { Flags::ECE } else { Flags(0) };
                    self.extra = Some(Extra::Answer(nat::shift::Segment {
                        src: (key.dst.ip, key.dst.port),
                        dst: (key.src.ip, key.src.port),
                        seq: cookie,
                        ack: offer.client_isn.wrapping_add(1),
                        flags,
                        window: 0xffff,
                        options,
                    }));
                    Step::Absorbed
                }
                Err(refusal) => Step::Drop(refusal.into()),
            };
        }
        if flags & (SYN | RST) != 0 || flags & ACK == 0 {
            return Step::Drop(DropReason::NoSession);
        }
        let cookie = ack.wrapping_sub(1);
        let Some(offered) = self.cookies.check(&flow(seq.wrapping_sub(1)), cookie, now_ms / 1000) else {
            count(2);
            return Step::Drop(DropReason::SynproxyBadCookie);
        };
        let echoed = nat::syn::timestamp(ip).and_then(|(_, ecr)| SynOptions::decode(ecr));
        let Some(state) = synproxied::from_ack(ip, cookie, offered.mss, echoed) else {
            return Step::Drop(DropReason::Truncated);
        };
        if let Some(reason) = self.admission.refuse(service, svc, key.src.ip, now_ms, c, &self.peers) {
            return Step::Drop(reason);
        }
        count(1);
        let id = match self.open(snap, service, key, SYN, now_ms, c) {
            Ok(id) => id,
            Err(reason) => return Step::Drop(reason),
        };
        let hop = self.sessions.get(id).hops[0];
        match svc.client_address {
            ClientAddress::ProxyV2 => self.proxied.open(&mut self.sessions, id),
            ClientAddress::Toa => self.sessions.get_mut(id).extras |= EXTRA_TOA,
            ClientAddress::None => {}
        }
        let syn = self.synproxied.open(&mut self.sessions, id, state, hop, now_ms);
        self.extra(hop, Extra::Hold { session: id, first: Some(syn) })
    }

    /// A packet of a SYN-proxied session whose backend handshake is under way (`ip` as it
    /// came): the client's wait; the backend's answer completes the handshake or ends it.
    #[allow(clippy::too_many_arguments)]
    #[cold]
    pub(super) fn syn_handshake(
        &mut self,
        id: SessionId,
        s: &Session,
        dir: Direction,
        ip: &mut [u8],
        hop: Hop,
        _now_ms: u64,
        c: &WorkerCounters,
    ) -> Step {
        match dir {
            Direction::Forward => self.extra(hop, Extra::Hold { session: id, first: None }),
            Direction::Reply => match self.synproxied.answer(id, s, ip) {
                Answered::Established(first) => {
                    if s.extras & EXTRA_PROXY_V2 != 0 {
                        self.proxied.handshake_done(id, first.segment.seq, first.segment.ack);
                    }
                    let shown = nat::syn::offer(ip).ok().and_then(|o| o.window_scale);
                    if let (Some(scale), Some(learned)) = (shown, self.learned_scale.get_mut(usize::from(s.service))) {
                        *learned = scale;
                    }
                    self.extra = Some(Extra::Release { session: id, first });
                    Step::Absorbed
                }
                Answered::Refused(reset) => {
                    let old = self.sessions.remove(id);
                    end(&mut self.pools, c, &old);
                    self.extra = Some(Extra::First(reset));
                    Step::Absorbed
                }
                Answered::Ignored => Step::Drop(DropReason::NoSession),
            },
        }
    }
}
