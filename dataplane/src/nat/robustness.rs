//! No input makes any function of this module panic, and what `inspect` accepts, `rewrite`
//! translates into a packet `inspect` accepts again with every checksum still right.
//! Pseudo-random buffers (some shaped like IPv4 so they get past the first checks), every
//! truncation of valid packets of each kind, and every single-byte corruption of them.

use super::testkit::*;
use super::*;
use crate::wire::icmp::{self, unreachable};
use crate::wire::ipv4::{self, protocol};
use crate::wire::tcp::{self, Flags};
use crate::wire::udp;

/// Runs every function on a copy of `b`; checks the properties that must hold for any input.
/// Returns whether `inspect` accepted it.
fn exercise(b: &[u8]) -> bool {
    let inspected = inspect(b);
    let _ = quoted_tuple(b);
    let mut out = [0u8; 576];
    if let Ok(n) = time_exceeded(b, LOCAL.0, &mut out) {
        assert!(inspect(&out[..n]).is_ok(), "time exceeded is a valid packet");
    }

    let mut copy = b.to_vec();
    let translated = rewrite(&mut copy, LOCAL, BACKEND);
    if translated.is_err() {
        assert_eq!(copy, b, "a refused packet is left unchanged");
    }
    if let Ok(i) = inspected {
        let translatable = matches!(i.tuple.proto, protocol::TCP | protocol::UDP)
            || matches!(i.icmp, Some(IcmpKind::EchoRequest | IcmpKind::EchoReply));
        assert_eq!(translated.is_ok(), translatable, "inspect and rewrite agree: {i:?}");
        if translatable {
            match inspect(&copy) {
                Ok(after) => assert_eq!(after.ttl, i.ttl - 1),
                Err(r) => assert_eq!((r, i.ttl), (Refusal::TtlExpired, 2)),
            }
            assert_l4_checksum_kept(b, &copy);
        }
    }

    let mut copy = b.to_vec();
    let _ = rewrite_for_offload(&mut copy, (VIP.0, 0), CLIENT);
    let mut copy = b.to_vec();
    if echo_reply(&mut copy).is_err() {
        assert_eq!(copy, b);
    }
    let mut copy = b.to_vec();
    if translate_error(&mut copy, VIP.0, CLIENT.0, CLIENT, VIP).is_err() {
        assert_eq!(copy, b);
    }
    inspected.is_ok()
}

/// A right L4 checksum stays right through the rewrite (and a wrong one stays wrong).
fn assert_l4_checksum_kept(before: &[u8], after: &[u8]) {
    let valid = |ip: &[u8]| {
        let p = ipv4::Packet::new_checked(ip).unwrap();
        match p.protocol() {
            protocol::TCP => tcp::Packet::new_checked(p.payload()).unwrap().verify_checksum(p.src(), p.dst()),
            protocol::UDP => udp::Packet::new_checked(p.payload()).unwrap().verify_checksum(p.src(), p.dst()),
            _ => icmp::Packet::new_checked(p.payload()).unwrap().verify_checksum(),
        }
    };
    assert_eq!(valid(before), valid(after));
}

fn valid_packets() -> Vec<Vec<u8>> {
    let forwarded = udp_packet(LOCAL, BACKEND, 63, b"quoted payload", true, &IP_OPTIONS);
    vec![
        tcp_packet(CLIENT, VIP, 64, Flags::SYN, b"", &[]),
        tcp_packet(BACKEND, LOCAL, 2, Flags::PSH | Flags::ACK, b"hello", &IP_OPTIONS),
        udp_packet(CLIENT, VIP, 64, b"query", true, &[]),
        udp_packet(CLIENT, VIP, 64, b"query", false, &IP_OPTIONS),
        echo_request_packet(CLIENT.0, VIP.0, 64, 1, b"ping"),
        echo_reply_packet(BACKEND.0, LOCAL.0, 64, 1, b"pong"),
        icmp_packet(
            ROUTER,
            LOCAL.0,
            64,
            &IP_OPTIONS,
            icmp::Repr::DestUnreachable { code: unreachable::FRAG_NEEDED, next_hop_mtu: 1400, quoted: &forwarded },
        ),
        icmp_packet(ROUTER, LOCAL.0, 64, &[], icmp::Repr::TimeExceeded { code: 0, quoted: &forwarded[..40] }),
    ]
}

#[test]
fn every_truncation_and_corruption_of_valid_packets() {
    for packet in valid_packets() {
        assert!(exercise(&packet));
        for len in 0..packet.len() {
            let _ = exercise(&packet[..len]);
        }
        for i in 0..packet.len() {
            for v in [0x00, 0x01, 0x45, 0x4f, 0x80, 0xff] {
                let mut b = packet.clone();
                b[i] = v;
                let _ = exercise(&b);
                // The same with the IP header checksum made right again, to get past it.
                if !(10..12).contains(&i) {
                    if let Ok(mut p) = ipv4::Packet::new_checked(&mut b[..]) {
                        p.fill_checksum();
                        let _ = exercise(&b);
                    }
                }
            }
        }
    }
}

#[test]
fn pseudo_random_buffers() {
    let mut rng = Rng::new(0x51u64);
    let mut accepted = 0;
    for round in 0..30_000 {
        let len = rng.below(140);
        let mut b = rng.bytes(len);
        // Most rounds look like IPv4 enough to reach the deeper checks.
        if round % 4 != 0 && len >= 20 {
            b[0] = 0x45 + (rng.below(4) as u8) * (round % 3 == 0) as u8;
            let total = if round % 5 == 0 { rng.below(len + 1) } else { len - rng.below(4).min(len - 20) };
            b[2..4].copy_from_slice(&(total as u16).to_be_bytes());
            b[6] &= 0x40;
            b[7] = 0;
            b[9] = [protocol::TCP, protocol::UDP, protocol::ICMP, 47][rng.below(4)];
            let header_len = 4 * (b[0] as usize & 0x0f);
            if b[9] == protocol::ICMP && header_len < len && round % 2 == 0 {
                b[header_len] = [0, 3, 8, 11, 12][rng.below(5)];
            }
            if let Ok(mut p) = ipv4::Packet::new_checked(&mut b[..]) {
                p.fill_checksum();
            }
        }
        accepted += exercise(&b) as usize;
    }
    assert!(accepted > 3000, "only {accepted} buffers reached the translation");
}

#[test]
fn ttl_two_becomes_one_and_is_refused_next_hop() {
    let mut b = udp_packet(CLIENT, VIP, 2, b"", true, &[]);
    rewrite(&mut b, LOCAL, BACKEND).unwrap();
    assert_eq!(inspect(&b), Err(Refusal::TtlExpired));
    assert_eq!(rewrite(&mut b, LOCAL, BACKEND), Err(Refusal::TtlExpired));
    assert_eq!(b[8], 1);
}
