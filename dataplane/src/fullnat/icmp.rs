//! ICMP for a VIP or local IP: echo requests are answered; errors about a packet Sluice sent
//! are relayed to the other side of its session.

use super::*;
use crate::nat::IcmpKind;
use crate::session::EXTRA_PROXY_V2;

impl FullNat {
    pub(super) fn icmp(&mut self, snap: &Snapshot, ip: &mut [u8], seen: &Inspected, c: &WorkerCounters) -> Step {
        match seen.icmp {
            Some(IcmpKind::EchoRequest) => match nat::echo_reply(ip) {
                Ok(()) => {
                    c.icmp_echo_replies.add(1);
                    Step::Bounce
                }
                Err(refusal) => Step::Drop(refusal.into()),
            },
            Some(IcmpKind::Error) => match self.relay_error(ip, seen.tuple.dst, c) {
                // About a client's session, sent to the VIP: it may be another worker's.
                Step::Drop(DropReason::NoSession) if snap.vips.is_vip(seen.tuple.dst) => Step::Elsewhere,
                step => step,
            },
            _ => Step::Drop(DropReason::IcmpUnhandled),
        }
    }

    /// An ICMP error about a packet Sluice sent goes to the other side of its session, as if
    /// about the packet that side sent: from the backend side to the client (VIP -> client),
    /// from the client side to the backend (local IP -> backend).
    fn relay_error(&self, ip: &mut [u8], to: Ipv4Addr, c: &WorkerCounters) -> Step {
        let Some(q) = nat::quoted_tuple(ip) else { return Step::Drop(DropReason::IcmpUnhandled) };
        // An error is about a packet its addressee sent: anything else is not about our flow.
        if q.src != to {
            return Step::Drop(DropReason::IcmpUnhandled);
        }
        // The quoted packet went out from us; the packet of the same flow coming in is its reverse.
        let key =
            FlowKey { proto: q.proto, src: Endpoint::new(q.dst, q.dst_port), dst: Endpoint::new(q.src, q.src_port) };
        let Some((id, dir)) = self.find(&key) else { return Step::Drop(DropReason::NoSession) };
        let s = self.sessions.get(id);
        let hops = s.hops;
        // A per-datagram session has no one backend to tell about a client-side error.
        if s.backend_index == ANY_BACKEND && dir == Direction::Forward {
            return Step::Drop(DropReason::IcmpUnhandled);
        }
        // From the backend side of a per-datagram session, the quoted packet names its backend.
        let backend = if s.backend_index == ANY_BACKEND { key.src } else { s.backend };
        // About a client's segment shifted on the way to the backend (`proxied`).
        let shifted = (dir == Direction::Reply && s.extras & EXTRA_PROXY_V2 != 0 && q.proto == protocol::TCP)
            .then(|| self.proxied.inserted(id))
            .flatten();
        let (outer_src, outer_dst, quoted_src, quoted_dst, hop) = match dir {
            Direction::Reply => (s.vip.ip, s.client.ip, s.client, s.vip, hops[1]),
            Direction::Forward => (s.local.ip, backend.ip, backend, s.local, hops[0]),
        };
        match nat::translate_error(
            ip,
            outer_src,
            outer_dst,
            (quoted_src.ip, quoted_src.port),
            (quoted_dst.ip, quoted_dst.port),
        ) {
            Ok(()) => {
                if let Some(inserted) = shifted {
                    let _ = nat::shift::unshift_quoted_seq(ip, inserted);
                }
                c.icmp_errors_relayed.add(1);
                Step::Forward { hop, offload: None }
            }
            Err(refusal) => Step::Drop(refusal.into()),
        }
    }
}
