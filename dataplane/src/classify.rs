//! Decides, from the headers alone, what happens to a frame received on a port: answered here
//! (ARP for an address the data path owns), handed to the kernel exception path (everything the
//! data path does not own: the host's own addresses, IPv6, LLDP, ...), or dropped with a reason.
//!
//! Pure logic over a byte slice: no mbufs, no allocation, never a panic on any input.

use std::net::Ipv4Addr;

use crate::counters::DropReason;
use crate::ipmap::IpMap;
use crate::wire::{arp, ethernet, ipv4, MacAddr};

/// Addresses the data path answers for on one link (VIPs and local IPs), in an `IpMap` for
/// the lookup every packet makes; some of them may be silent (a VIP whose services lost their
/// quorum: no ARP answers).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnedAddrs {
    /// The addresses (kept in order by the map itself).
    index: IpMap<()>,
    silent: Vec<u32>,
}

impl OwnedAddrs {
    pub fn new(addrs: impl IntoIterator<Item = Ipv4Addr>) -> OwnedAddrs {
        let index = IpMap::new(addrs.into_iter().map(|a| (u32::from(a), ())));
        OwnedAddrs { index, silent: Vec::new() }
    }

    /// The same addresses, those of `silent` not answering ARP.
    pub fn with_silent(mut self, silent: impl IntoIterator<Item = Ipv4Addr>) -> OwnedAddrs {
        self.silent = silent.into_iter().map(u32::from).filter(|&a| self.index.contains(a)).collect();
        self.silent.sort_unstable();
        self.silent.dedup();
        self
    }

    #[inline]
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        self.index.contains(u32::from(ip))
    }

    #[inline]
    pub fn is_silent(&self, ip: Ipv4Addr) -> bool {
        !self.silent.is_empty() && self.silent.binary_search(&u32::from(ip)).is_ok()
    }

    pub fn iter(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.index.entries().iter().map(|&(a, ())| Ipv4Addr::from(a))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// An ARP request for an owned address: learn the sender, turn it into the reply, send it back.
    ArpRequestForUs {
        sender_ip: Ipv4Addr,
        sender_mac: MacAddr,
    },
    /// Any other ARP: learn the sender, and let the kernel see it too (its own neighbours).
    Arp {
        sender_ip: Ipv4Addr,
        sender_mac: MacAddr,
    },
    /// IPv4 to an owned address: FULLNAT's business (`fullnat::FullNat::process`).
    Local,
    /// Not the data path's business: hand it to the kernel interface of this port.
    Kernel,
    Drop(DropReason),
}

pub fn classify(frame: &[u8], owned: &OwnedAddrs) -> Verdict {
    let Ok(eth) = ethernet::Frame::new_checked(frame) else {
        return Verdict::Drop(DropReason::Malformed);
    };
    match eth.ethertype() {
        ethernet::ethertype::ARP => classify_arp(eth.payload(), owned),
        ethernet::ethertype::IPV4 => classify_ipv4(eth.payload(), owned),
        _ => Verdict::Kernel,
    }
}

fn classify_arp(payload: &[u8], owned: &OwnedAddrs) -> Verdict {
    match arp::Packet::new_checked(payload) {
        Ok(p) => {
            let (sender_ip, sender_mac) = (p.sender_ip(), p.sender_mac());
            if p.operation() == arp::Operation::Request && owned.contains(p.target_ip()) {
                if owned.is_silent(p.target_ip()) {
                    return Verdict::Drop(DropReason::VipDown);
                }
                Verdict::ArpRequestForUs { sender_ip, sender_mac }
            } else {
                Verdict::Arp { sender_ip, sender_mac }
            }
        }
        Err(_) => Verdict::Drop(DropReason::Malformed),
    }
}

/// Only the destination decides here; FULLNAT's `nat::inspect` checks the whole header once,
/// and the kernel checks what it gets.
fn classify_ipv4(payload: &[u8], owned: &OwnedAddrs) -> Verdict {
    if payload.len() < ipv4::MIN_HEADER_LEN {
        return Verdict::Drop(DropReason::Truncated);
    }
    let dst = Ipv4Addr::new(payload[16], payload[17], payload[18], payload[19]);
    if owned.contains(dst) {
        Verdict::Local
    } else {
        Verdict::Kernel
    }
}

/// Rewrites an ARP request frame (already classified `ArpReply`) into our reply, in place.
/// Returns false, leaving the frame untouched, if it is not such a frame.
pub fn answer_arp(frame: &mut [u8], our_mac: MacAddr) -> bool {
    let Ok(mut eth) = ethernet::Frame::new_checked(frame) else { return false };
    let requester = eth.source();
    let Ok(mut request) = arp::Packet::new_checked(eth.payload_mut()) else { return false };
    request.make_reply(our_mac);
    eth.set_destination(requester).set_source(our_mac);
    true
}

/// The shortest Ethernet frame (without FCS); ARP frames are padded to it.
pub const MIN_FRAME_LEN: usize = 60;

/// Writes an ARP request from `our_mac`/`our_ip` for `target_ip`, broadcast, into `frame`.
/// With `target_ip == our_ip` it is a gratuitous announcement.
pub fn arp_request(frame: &mut [u8; MIN_FRAME_LEN], our_mac: MacAddr, our_ip: Ipv4Addr, target_ip: Ipv4Addr) {
    frame.fill(0);
    let mut eth = ethernet::Frame::new_checked(&mut frame[..]).expect("60 bytes hold a header");
    eth.set_destination(MacAddr::BROADCAST).set_source(our_mac).set_ethertype(ethernet::ethertype::ARP);
    let body: &mut [u8; arp::PACKET_LEN] =
        (&mut frame[ethernet::HEADER_LEN..ethernet::HEADER_LEN + arp::PACKET_LEN]).try_into().expect("ARP body length");
    arp::Repr {
        operation: arp::Operation::Request,
        sender_mac: our_mac,
        sender_ip: our_ip,
        target_mac: MacAddr::default(),
        target_ip,
    }
    .emit(body);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::MacAddr;

    const CLIENT_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);
    const OUR_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);

    fn owned() -> OwnedAddrs {
        OwnedAddrs::new([Ipv4Addr::new(198, 18, 0, 10), Ipv4Addr::new(198, 18, 1, 100)])
    }

    fn arp_frame(op: arp::Operation, target: Ipv4Addr) -> Vec<u8> {
        let mut f = vec![0u8; ethernet::HEADER_LEN + arp::PACKET_LEN];
        ethernet::Frame::new_checked(&mut f[..])
            .unwrap()
            .set_destination(MacAddr::BROADCAST)
            .set_source(CLIENT_MAC)
            .set_ethertype(ethernet::ethertype::ARP);
        let mut body = [0u8; arp::PACKET_LEN];
        arp::Repr {
            operation: op,
            sender_mac: CLIENT_MAC,
            sender_ip: Ipv4Addr::new(198, 18, 0, 2),
            target_mac: MacAddr::default(),
            target_ip: target,
        }
        .emit(&mut body);
        f[ethernet::HEADER_LEN..].copy_from_slice(&body);
        f
    }

    fn ipv4_frame(dst: Ipv4Addr) -> Vec<u8> {
        let mut f = vec![0u8; ethernet::HEADER_LEN + 28];
        f[12] = 0x08;
        let ip = &mut f[ethernet::HEADER_LEN..];
        ip[0] = 0x45;
        ip[3] = 28;
        ip[8] = 64;
        ip[9] = ipv4::protocol::UDP;
        ip[12..16].copy_from_slice(&[198, 18, 0, 2]);
        ip[16..20].copy_from_slice(&dst.octets());
        f
    }

    #[test]
    fn arp_request_for_owned_address_is_answered() {
        let f = arp_frame(arp::Operation::Request, Ipv4Addr::new(198, 18, 0, 10));
        let sender = Verdict::ArpRequestForUs { sender_ip: Ipv4Addr::new(198, 18, 0, 2), sender_mac: CLIENT_MAC };
        assert_eq!(classify(&f, &owned()), sender);
    }

    #[test]
    fn a_silent_vip_answers_no_arp_but_still_owns_its_traffic() {
        let quiet = owned().with_silent([Ipv4Addr::new(198, 18, 0, 10), Ipv4Addr::new(198, 18, 0, 99)]);
        let f = arp_frame(arp::Operation::Request, Ipv4Addr::new(198, 18, 0, 10));
        assert_eq!(classify(&f, &quiet), Verdict::Drop(DropReason::VipDown));
        assert_eq!(
            classify(&ipv4_frame(Ipv4Addr::new(198, 18, 0, 10)), &quiet),
            Verdict::Local,
            "dropped by FULLNAT, counted"
        );
        assert!(!quiet.is_silent(Ipv4Addr::new(198, 18, 0, 99)), "only owned addresses can be silent");
        let f = arp_frame(arp::Operation::Request, Ipv4Addr::new(198, 18, 1, 100));
        assert!(matches!(classify(&f, &quiet), Verdict::ArpRequestForUs { .. }));
    }

    #[test]
    fn arp_for_the_host_goes_to_the_kernel() {
        let learned = Verdict::Arp { sender_ip: Ipv4Addr::new(198, 18, 0, 2), sender_mac: CLIENT_MAC };
        let f = arp_frame(arp::Operation::Request, Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!(classify(&f, &owned()), learned);
        let f = arp_frame(arp::Operation::Reply, Ipv4Addr::new(198, 18, 0, 10));
        assert_eq!(classify(&f, &owned()), learned, "replies feed both neighbour tables");
    }

    #[test]
    fn answer_arp_builds_the_reply_frame() {
        let mut f = arp_frame(arp::Operation::Request, Ipv4Addr::new(198, 18, 0, 10));
        assert!(answer_arp(&mut f, OUR_MAC));
        let eth = ethernet::Frame::new_checked(&f[..]).unwrap();
        assert_eq!(eth.destination(), CLIENT_MAC);
        assert_eq!(eth.source(), OUR_MAC);
        let reply = arp::Packet::new_checked(eth.payload()).unwrap();
        assert_eq!(reply.operation(), arp::Operation::Reply);
        assert_eq!(reply.sender_ip(), Ipv4Addr::new(198, 18, 0, 10));
        assert_eq!(reply.sender_mac(), OUR_MAC);
        assert_eq!(reply.target_ip(), Ipv4Addr::new(198, 18, 0, 2));
    }

    #[test]
    fn arp_request_is_a_broadcast_request_padded_to_the_minimum() {
        let mut f = [0xaau8; MIN_FRAME_LEN];
        arp_request(&mut f, OUR_MAC, Ipv4Addr::new(198, 18, 1, 1), Ipv4Addr::new(198, 18, 1, 2));
        let eth = ethernet::Frame::new_checked(&f[..]).unwrap();
        assert_eq!((eth.destination(), eth.source()), (MacAddr::BROADCAST, OUR_MAC));
        let p = arp::Packet::new_checked(eth.payload()).unwrap();
        assert_eq!(p.operation(), arp::Operation::Request);
        assert_eq!((p.sender_ip(), p.target_ip()), (Ipv4Addr::new(198, 18, 1, 1), Ipv4Addr::new(198, 18, 1, 2)));
        assert!(f[ethernet::HEADER_LEN + arp::PACKET_LEN..].iter().all(|&b| b == 0), "padding zeroed");
    }

    #[test]
    fn ipv4_split_between_owned_and_kernel() {
        assert_eq!(classify(&ipv4_frame(Ipv4Addr::new(198, 18, 0, 1)), &owned()), Verdict::Kernel);
        assert_eq!(classify(&ipv4_frame(Ipv4Addr::new(198, 18, 0, 10)), &owned()), Verdict::Local);
    }

    #[test]
    fn other_ethertypes_go_to_the_kernel() {
        let mut f = ipv4_frame(Ipv4Addr::new(198, 18, 0, 10));
        f[12..14].copy_from_slice(&ethernet::ethertype::IPV6.to_be_bytes());
        assert_eq!(classify(&f, &owned()), Verdict::Kernel);
    }

    #[test]
    fn garbage_is_dropped_as_malformed_never_a_panic() {
        assert_eq!(classify(&[0u8; 5], &owned()), Verdict::Drop(DropReason::Malformed));
        let mut f = ipv4_frame(Ipv4Addr::new(198, 18, 0, 10));
        f.truncate(ethernet::HEADER_LEN + 10);
        assert_eq!(classify(&f, &owned()), Verdict::Drop(DropReason::Truncated));
        let mut f = arp_frame(arp::Operation::Request, Ipv4Addr::new(198, 18, 0, 10));
        f.truncate(ethernet::HEADER_LEN + 20);
        assert_eq!(classify(&f, &owned()), Verdict::Drop(DropReason::Malformed));
        // Every prefix of a valid frame, and every single-byte corruption, classifies cleanly.
        let base = ipv4_frame(Ipv4Addr::new(198, 18, 0, 10));
        for len in 0..base.len() {
            let _ = classify(&base[..len], &owned());
        }
        for i in 0..base.len() {
            for v in [0u8, 0x0f, 0x45, 0xff] {
                let mut f = base.clone();
                f[i] = v;
                let _ = classify(&f, &owned());
            }
        }
    }
}
