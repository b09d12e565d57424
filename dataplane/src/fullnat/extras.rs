//! What sessions with extras (`Session::extras`: the SYN proxy, `client_address`) need around
//! their rewrite: off the path of plain sessions, which test `extras` once and never come here.

use super::{
    dont_fragment, mtu_of, proxied, ClientHeader, Extra, FullNat, Hop, Session, SessionId, Step, EXTRA_PROXY_V2,
    EXTRA_SYNPROXY, EXTRA_TOA,
};
use crate::counters::WorkerCounters;
use crate::nat;
use crate::session::Direction;
use crate::snapshot::Snapshot;
use crate::wire::ipv4::protocol;

impl FullNat {
    /// What a session with extras needs before its rewrite: the SYN proxy's backend handshake
    /// (the client's packets wait, the backend's answer completes it, `synproxied`), or a UDP
    /// datagram the PROXY header would make too big for the path.
    #[cold]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn before_rewrite(
        &mut self,
        snap: &Snapshot,
        id: SessionId,
        s: &Session,
        dir: Direction,
        ip: &mut [u8],
        hop: Hop,
        len: u32,
        now_ms: u64,
        c: &WorkerCounters,
    ) -> Option<Step> {
        if s.extras & EXTRA_SYNPROXY != 0 && !self.synproxied.get(id).established {
            return Some(self.syn_handshake(id, s, dir, ip, hop, now_ms, c));
        }
        if dir == Direction::Forward && s.proto == protocol::UDP {
            let mtu = mtu_of(snap, hop);
            if len as usize + crate::wire::proxy::PROXY_LEN > usize::from(mtu) && dont_fragment(ip) {
                return Some(Step::TooBig { mtu: mtu - crate::wire::proxy::PROXY_LEN as u16, service: s.service });
            }
        }
        None
    }

    /// A packet of a session with extras, rewritten. `proxy-v2`: on UDP the worker puts the
    /// header before a datagram to the backend; on TCP the sequence space is adjusted
    /// (`proxied`), and the header sent first when the handshake has just completed.
    #[allow(clippy::too_many_arguments)]
    #[cold]
    pub(super) fn extras(
        &mut self,
        snap: &Snapshot,
        id: SessionId,
        s: &Session,
        dir: Direction,
        ip: &mut [u8],
        hop: Hop,
        now_ms: u64,
        c: &WorkerCounters,
    ) -> Step {
        // The SYN proxy maps the numbers of the backend's side (forward acknowledgements,
        // reply sequence numbers); `client_address` then shifts or marks the client's.
        if s.extras & EXTRA_SYNPROXY != 0 {
            let m = self.synproxied.get(id).mapping;
            let _ = match dir {
                Direction::Forward => nat::syn::map_to_backend(ip, &m),
                Direction::Reply => nat::syn::map_to_client(ip, &m),
            };
            if s.extras & (EXTRA_PROXY_V2 | EXTRA_TOA) == 0 {
                return Step::Forward { hop, offload: None };
            }
        }
        if s.extras & EXTRA_TOA != 0 {
            return self.toa(id, s, dir, ip, hop);
        }
        let header = ClientHeader { client: s.client, vip: s.vip };
        match (s.proto, dir) {
            (protocol::UDP, Direction::Forward) => self.extra(hop, Extra::Header { header, service: s.service }),
            (protocol::UDP, Direction::Reply) => Step::Forward { hop, offload: None },
            (_, Direction::Forward) => match self.proxied.forward(id, s, ip, hop, now_ms, mtu_of(snap, hop)) {
                proxied::Shifted::Send => Step::Forward { hop, offload: None },
                proxied::Shifted::Lead => {
                    c.client_address(s.service, crate::counters::ClientAddressResult::Resent);
                    self.extra(hop, Extra::Header { header, service: s.service })
                }
                proxied::Shifted::SendAfter(first) => {
                    c.client_address(s.service, crate::counters::ClientAddressResult::Added);
                    self.extra(hop, Extra::First(first))
                }
            },
            (_, Direction::Reply) => {
                self.proxied.reply(id, ip, now_ms);
                Step::Forward { hop, offload: None }
            }
        }
    }
}
