//! TCP sessions of `client_address = "toa"`: the client's address as TCP option 254 on its
//! segments to the backend (the worker inserts it) until the backend has sent data; the client's
//! own option 254 never passes; the backend's SYN+ACK offers an MSS lowered by the option's room.

use super::*;

impl FullNat {
    /// A packet of a TCP `toa` session, rewritten: the client's segments get the option (by
    /// the worker) until the backend has sent data, its SYN none and never a forged one; the
    /// backend's SYN+ACK offers an MSS 8 lower.
    #[cold]
    pub(super) fn toa(&mut self, id: SessionId, s: &Session, dir: Direction, ip: &mut [u8], hop: Hop) -> Step {
        let ihl = ipv4::header_len(ip);
        let flags = ip[ihl + crate::wire::tcp::offset::FLAGS] & (tcp_flags::SYN | tcp_flags::ACK);
        match dir {
            Direction::Forward if flags == tcp_flags::SYN || s.extras & EXTRA_TOA_DONE != 0 => {
                let _ = nat::toa::remove(ip, nat::toa::KIND);
                Step::Forward { hop, offload: None }
            }
            Direction::Forward => self.extra(hop, Extra::Toa { client: s.client, service: s.service }),
            Direction::Reply => {
                if flags == tcp_flags::SYN | tcp_flags::ACK {
                    let _ = nat::toa::lower_mss(ip, nat::toa::LEN as u16);
                } else if proxied::has_data(ip) {
                    self.sessions.get_mut(id).extras |= EXTRA_TOA_DONE;
                }
                Step::Forward { hop, offload: None }
            }
        }
    }
}
