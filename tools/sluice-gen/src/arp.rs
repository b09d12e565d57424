//! ARP on both ports: the client side asks for the VIP's MAC (the balancer) and answers for its
//! client addresses; the backend side answers for any address asked (proxy ARP with its own
//! MAC), so the balancer's next hops to backends all resolve to the generator.

use std::net::Ipv4Addr;

use dataplane::wire::{arp, ethernet, MacAddr};

/// Ethernet + ARP, padded to the minimum frame.
pub const FRAME_LEN: usize = dataplane::classify::MIN_FRAME_LEN;

/// What an ARP frame means to the side that received it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// A request for an address this side answers: the frame now holds the reply.
    Answered,
    /// Any ARP packet (reply, request or announcement) sent by `ip` from `mac`.
    From { ip: Ipv4Addr, mac: MacAddr },
    /// Malformed, or not for us (a request for an address we do not answer).
    Ignored,
}

/// Writes a broadcast who-has `target` from `source` at `our_mac` into `frame`
/// (at least `FRAME_LEN` bytes); returns the frame length.
pub fn request(frame: &mut [u8], our_mac: MacAddr, source: Ipv4Addr, target: Ipv4Addr) -> usize {
    let frame: &mut [u8; FRAME_LEN] = (&mut frame[..FRAME_LEN]).try_into().expect("FRAME_LEN bytes");
    dataplane::classify::arp_request(frame, our_mac, source, target);
    FRAME_LEN
}

/// Handles an ARP frame in place. A request (not a gratuitous announcement) whose target
/// `answers` accepts becomes the reply from `our_mac`, addressed to the requester; anything else
/// tells who sent it. The frame keeps its length (at least the 42 bytes of Ethernet + ARP).
pub fn handle(frame: &mut [u8], our_mac: MacAddr, answers: impl Fn(Ipv4Addr) -> bool) -> Seen {
    let Ok(mut eth) = ethernet::Frame::new_checked(&mut *frame) else {
        return Seen::Ignored;
    };
    if eth.ethertype() != ethernet::ethertype::ARP {
        return Seen::Ignored;
    }
    let requester = eth.source();
    let Ok(mut packet) = arp::Packet::new_checked(eth.payload_mut()) else {
        return Seen::Ignored;
    };
    let (sender, target) = (packet.sender_ip(), packet.target_ip());
    let gratuitous = sender == target || sender.is_unspecified();
    if packet.operation() == arp::Operation::Request && !gratuitous && answers(target) {
        packet.make_reply(our_mac);
        eth.set_destination(requester).set_source(our_mac);
        return Seen::Answered;
    }
    if sender.is_unspecified() {
        return Seen::Ignored;
    }
    Seen::From { ip: sender, mac: packet.sender_mac() }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xc1]);
    const LB: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x1b]);
    const LB_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
    const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);

    fn parsed(frame: &[u8]) -> (MacAddr, MacAddr, arp::Repr) {
        let eth = ethernet::Frame::new_checked(frame).unwrap();
        let p = arp::Packet::new_checked(eth.payload()).unwrap();
        let repr = arp::Repr {
            operation: p.operation(),
            sender_mac: p.sender_mac(),
            sender_ip: p.sender_ip(),
            target_mac: p.target_mac(),
            target_ip: p.target_ip(),
        };
        (eth.destination(), eth.source(), repr)
    }

    #[test]
    fn builds_a_broadcast_request() {
        let mut b = [0xaa; 64];
        assert_eq!(request(&mut b, OURS, CLIENT, VIP), FRAME_LEN);
        let (dst, src, repr) = parsed(&b[..FRAME_LEN]);
        assert_eq!((dst, src), (MacAddr::BROADCAST, OURS));
        assert_eq!(repr.operation, arp::Operation::Request);
        assert_eq!((repr.sender_ip, repr.target_ip, repr.sender_mac), (CLIENT, VIP, OURS));
        assert!(b[42..60].iter().all(|&x| x == 0), "padding is zero");
    }

    #[test]
    fn answers_requests_it_owns() {
        let mut b = [0u8; FRAME_LEN];
        request(&mut b, LB, LB_IP, CLIENT);
        assert_eq!(handle(&mut b, OURS, |ip| ip == CLIENT), Seen::Answered);
        let (dst, src, repr) = parsed(&b);
        assert_eq!((dst, src), (LB, OURS));
        assert_eq!(repr.operation, arp::Operation::Reply);
        assert_eq!((repr.sender_ip, repr.sender_mac), (CLIENT, OURS));
        assert_eq!((repr.target_ip, repr.target_mac), (LB_IP, LB));
    }

    #[test]
    fn learns_from_replies_and_unanswered_requests() {
        let mut b = [0u8; FRAME_LEN];
        request(&mut b, OURS, CLIENT, VIP);
        handle(&mut b, LB, |_| true); // the balancer answers for its VIP
        assert_eq!(handle(&mut b, OURS, |_| true), Seen::From { ip: VIP, mac: LB }, "a reply is never answered");
        let mut b = [0u8; FRAME_LEN];
        request(&mut b, LB, LB_IP, Ipv4Addr::new(198, 18, 0, 200));
        assert_eq!(handle(&mut b, OURS, |ip| ip == CLIENT), Seen::From { ip: LB_IP, mac: LB });
    }

    #[test]
    fn gratuitous_announcements_are_learned_not_answered() {
        let mut b = [0u8; FRAME_LEN];
        request(&mut b, LB, VIP, VIP);
        assert_eq!(handle(&mut b, OURS, |_| true), Seen::From { ip: VIP, mac: LB });
        let mut b = [0u8; FRAME_LEN];
        request(&mut b, LB, Ipv4Addr::UNSPECIFIED, CLIENT); // an address probe (RFC 5227)
        assert_eq!(handle(&mut b, OURS, |_| true), Seen::Ignored);
    }

    #[test]
    fn ignores_junk() {
        let mut b = [0u8; FRAME_LEN];
        request(&mut b, LB, LB_IP, CLIENT);
        assert_eq!(handle(&mut b[..30], OURS, |_| true), Seen::Ignored);
        b[12] = 0x08;
        b[13] = 0x00;
        assert_eq!(handle(&mut b, OURS, |_| true), Seen::Ignored);
    }
}
