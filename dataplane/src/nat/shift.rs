//! TCP sequence space shifted by bytes Sluice puts into a stream (the PROXY v2 header of
//! `client_address = "proxy-v2"`): the client's segments to the backend move forward by that
//! many bytes, and the backend's acknowledgements (and SACK blocks) of the client's bytes move
//! back; acknowledgements of the inserted bytes alone become acknowledgements of where they
//! start, and SACK blocks that cover only them are removed. Also the segments Sluice writes
//! itself into such a connection (the header, a reset), and the refusal of TCP Fast Open data.
//!
//! Edits touch the TCP header only; its checksum changes by the header's sum before and after
//! (at most 60 bytes summed), so payloads are never summed and any edit of the header (flags,
//! options at odd offsets) is covered.

use std::net::Ipv4Addr;

use crate::wire::checksum::{self, Delta};
use crate::wire::ipv4::{self, offset, protocol};
use crate::wire::tcp::offset::{ACK, CHECKSUM, FLAGS, SEQ};
use crate::wire::tcp::{self, Flags};
use crate::wire::{read_u16, write_u16};

use super::{read_u32, write_u32, Refusal};

const ACK_FLAG: u8 = Flags::ACK.bits();
const SYN_FLAG: u8 = Flags::SYN.bits();
/// TCP option kinds (also for `toa`).
pub(super) const END: u8 = 0;
pub(super) const NOP: u8 = 1;
pub(super) const MSS: u8 = 2;
pub(super) const SACK: u8 = 5;
const FAST_OPEN: u8 = 34;

/// Where the inserted bytes sit in the client's sequence space: `len` bytes from `at` (the
/// client's initial sequence number + 1). Positions are compared modulo 2^32.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inserted {
    pub at: u32,
    pub len: u32,
}

impl Inserted {
    /// A position in the backend's view of the stream, as the client sees it: past the
    /// inserted bytes, `len` less; within them, `at`; before them, unchanged.
    #[inline]
    pub fn to_client(&self, seq: u32) -> u32 {
        let past = seq.wrapping_sub(self.at) as i32;
        if past >= self.len as i32 {
            seq.wrapping_sub(self.len)
        } else if past > 0 {
            self.at
        } else {
            seq
        }
    }

    /// Whether an acknowledgement from the backend covers every inserted byte.
    #[inline]
    pub fn acknowledged_by(&self, ack: u32) -> bool {
        ack.wrapping_sub(self.at) as i32 >= self.len as i32
    }
}

/// The TCP header of a TCP packet for an edit (`ihl`, TCP header length, IP total length);
/// refused otherwise (also for `toa`).
pub(super) fn tcp_header(ip: &[u8]) -> Result<(usize, usize, usize), Refusal> {
    let p = ipv4::Packet::new_checked(ip)?;
    if p.protocol() != protocol::TCP {
        return Err(Refusal::UnsupportedProtocol);
    }
    if p.is_fragment() {
        return Err(Refusal::Fragment);
    }
    let (ihl, total) = (p.header_len(), usize::from(p.total_len()));
    let t = tcp::Packet::new_checked(&ip[ihl..total])?;
    Ok((ihl, t.header_len(), total))
}

/// The sum of a TCP header with its checksum field taken as zero.
pub(super) fn header_sum(header: &[u8]) -> u16 {
    checksum::add(checksum::sum(&header[..CHECKSUM]), checksum::sum(&header[CHECKSUM + 2..]))
}

/// Applies `edit` to the TCP header of `ip` and updates the checksum by the header's sum
/// (also for `toa`).
pub(super) fn edit_header(ip: &mut [u8], edit: impl FnOnce(&mut [u8])) -> Result<(), Refusal> {
    let (ihl, len, _) = tcp_header(ip)?;
    let header = &mut ip[ihl..ihl + len];
    let before = header_sum(header);
    edit(header);
    let after = header_sum(header);
    let sum = read_u16(header, CHECKSUM);
    write_u16(header, CHECKSUM, Delta::new().u16(before, after).apply(sum));
    Ok(())
}

/// A client's segment to the backend: its sequence number moves forward by `by`.
pub fn shift_seq(ip: &mut [u8], by: u32) -> Result<(), Refusal> {
    let (ihl, _, _) = tcp_header(ip)?;
    let h = &mut ip[ihl..];
    let (old, new) = (read_u32(h, SEQ), read_u32(h, SEQ).wrapping_add(by));
    write_u32(h, SEQ, new);
    write_u16(h, CHECKSUM, Delta::new().u32(old, new).apply(read_u16(h, CHECKSUM)));
    Ok(())
}

/// A backend's segment to the client: its acknowledgement and SACK blocks of the client's
/// bytes mapped back over `inserted` (`Inserted::to_client`). A SACK block left empty (it
/// covered inserted bytes only) is removed: the blocks after it move up, the option shrinks and
/// NOPs fill its place. Returns the acknowledgement as it came (`None` without ACK).
pub fn unshift_ack(ip: &mut [u8], inserted: Inserted) -> Result<Option<u32>, Refusal> {
    let mut acked = None;
    edit_header(ip, |h| {
        if h[FLAGS] & ACK_FLAG != 0 {
            let ack = read_u32(h, ACK);
            acked = Some(ack);
            write_u32(h, ACK, inserted.to_client(ack));
        }
        map_sack(&mut h[tcp::HEADER_LEN..], inserted);
    })?;
    Ok(acked)
}

/// An ICMP error about a client's segment as Sluice sent it to the backend (shifted), relayed
/// to the client: the quoted sequence number is mapped back (`Inserted::to_client`), so that
/// the client's stack finds it within its window (Linux ignores errors about sequence numbers
/// it never sent, path MTU discovery included). The ICMP checksum follows; the quoted TCP
/// checksum is cut off anyway.
pub fn unshift_quoted_seq(ip: &mut [u8], inserted: Inserted) -> Result<(), Refusal> {
    let p = ipv4::Packet::new_checked(&*ip)?;
    if p.protocol() != protocol::ICMP {
        return Err(Refusal::UnsupportedProtocol);
    }
    let (ihl, total) = (p.header_len(), usize::from(p.total_len()));
    let icmp = &mut ip[ihl..total];
    let quoted_ihl = usize::from(icmp.get(8).ok_or(Refusal::Truncated)? & 0x0f) * 4;
    if icmp.get(8 + 9) != Some(&protocol::TCP) {
        return Err(Refusal::UnsupportedProtocol);
    }
    let at = 8 + quoted_ihl + SEQ;
    if icmp.len() < at + 4 {
        return Err(Refusal::Truncated);
    }
    let old = read_u32(icmp, at);
    let new = inserted.to_client(old);
    write_u32(icmp, at, new);
    write_u16(icmp, 2, Delta::new().u32(old, new).apply(read_u16(icmp, 2)));
    Ok(())
}

/// The options in a TCP header's option bytes, in order, as (kind, offset, length): NOPs
/// skipped; the walk stops at the end option or at anything malformed (also for `toa`, `syn`).
pub(super) fn options(bytes: &[u8]) -> impl Iterator<Item = (u8, usize, usize)> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || loop {
        let &kind = bytes.get(at)?;
        match kind {
            END => return None,
            NOP => at += 1,
            _ => {
                let len = usize::from(*bytes.get(at + 1)?);
                if len < 2 || at + len > bytes.len() {
                    return None;
                }
                at += len;
                return Some((kind, at - len, len));
            }
        }
    })
}

/// Maps every SACK option's blocks in `options` (see `unshift_ack`).
fn map_sack(options: &mut [u8], inserted: Inserted) {
    let mut sacks = [(0usize, 0usize); 4];
    let mut n = 0;
    for (kind, at, len) in self::options(options) {
        if kind == SACK && (len - 2) % 8 == 0 && n < sacks.len() {
            sacks[n] = (at, len);
            n += 1;
        }
    }
    for &(at, len) in &sacks[..n] {
        let blocks = (len - 2) / 8;
        let mut kept = 0;
        for b in 0..blocks {
            let from = at + 2 + 8 * b;
            let left = inserted.to_client(read_u32(options, from));
            let right = inserted.to_client(read_u32(options, from + 4));
            if left != right {
                let to = at + 2 + 8 * kept;
                write_u32(options, to, left);
                write_u32(options, to + 4, right);
                kept += 1;
            }
        }
        if kept == 0 {
            options[at..at + len].fill(NOP);
        } else if kept < blocks {
            options[at + 1] = (2 + 8 * kept) as u8;
            options[at + 2 + 8 * kept..at + len].fill(NOP);
        }
    }
}

/// A client's SYN carrying data (TCP Fast Open): the data is cut off and the Fast Open option
/// becomes NOPs, so that the backend neither sees data before the inserted bytes nor offers
/// a cookie; the client sends the data again after the handshake, as Fast Open provides when
/// a SYN's data is not acknowledged. Returns the new IP total length, or `None` for any other
/// segment (left alone).
pub fn refuse_fast_open(ip: &mut [u8]) -> Result<Option<u16>, Refusal> {
    let (ihl, len, total) = tcp_header(ip)?;
    let header = &ip[ihl..ihl + len];
    if header[FLAGS] & (SYN_FLAG | ACK_FLAG) != SYN_FLAG {
        return Ok(None);
    }
    let has_option = option_at(&header[tcp::HEADER_LEN..], FAST_OPEN).is_some();
    if total == ihl + len && !has_option {
        return Ok(None);
    }
    let new_total = (ihl + len) as u16;
    let ip_sum = Delta::new().u16(total as u16, new_total).apply(read_u16(ip, offset::CHECKSUM));
    write_u16(ip, offset::TOTAL_LEN, new_total);
    write_u16(ip, offset::CHECKSUM, ip_sum);
    let (src, dst) = (addr(ip, offset::SRC), addr(ip, offset::DST));
    let header = &mut ip[ihl..ihl + len];
    if let Some((at, olen)) = option_at(&header[tcp::HEADER_LEN..], FAST_OPEN) {
        header[tcp::HEADER_LEN + at..tcp::HEADER_LEN + at + olen].fill(NOP);
    }
    write_u16(header, CHECKSUM, 0);
    let pseudo = checksum::pseudo_header(src, dst, protocol::TCP, len as u16);
    write_u16(header, CHECKSUM, checksum::compute(pseudo, header));
    Ok(Some(new_total))
}

/// Where option `kind` is among `options`, and its length.
fn option_at(bytes: &[u8], kind: u8) -> Option<(usize, usize)> {
    options(bytes).find(|&(k, _, _)| k == kind).map(|(_, at, len)| (at, len))
}

fn addr(ip: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(ip[at], ip[at + 1], ip[at + 2], ip[at + 3])
}

/// A segment Sluice writes into a connection itself: what it needs besides its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub src: (Ipv4Addr, u16),
    pub dst: (Ipv4Addr, u16),
    pub seq: u32,
    pub ack: u32,
    pub flags: Flags,
    pub window: u16,
    /// TCP options (none for the PROXY header and resets; the SYN proxy's handshake).
    pub options: super::syn::Options,
}

/// Writes `segment` with `payload` as a whole IPv4 packet (TTL 64, DF, no IP options) into
/// `out`; returns its length. Refused if `out` is too short.
pub fn build(segment: &Segment, payload: &[u8], out: &mut [u8]) -> Result<usize, Refusal> {
    let repr = tcp::Repr {
        src_port: segment.src.1,
        dst_port: segment.dst.1,
        seq: segment.seq,
        ack: segment.ack,
        flags: segment.flags,
        window: segment.window,
        options: segment.options.as_slice(),
        payload,
    };
    let total = ipv4::MIN_HEADER_LEN + repr.buffer_len();
    if out.len() < total {
        return Err(Refusal::Truncated);
    }
    let header = ipv4::Repr {
        src: segment.src.0,
        dst: segment.dst.0,
        protocol: protocol::TCP,
        ttl: 64,
        payload_len: repr.buffer_len(),
    };
    header.emit(out);
    write_u16(out, offset::FLAGS_FRAG, ipv4::DONT_FRAGMENT);
    let c = checksum::ipv4_header(&out[..ipv4::MIN_HEADER_LEN]);
    write_u16(out, offset::CHECKSUM, c);
    repr.emit(&mut out[ipv4::MIN_HEADER_LEN..total], segment.src.0, segment.dst.0);
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nat::testkit::{assert_checksums_exact, tcp_packet, Endpoint};

    const CLIENT: Endpoint = (Ipv4Addr::new(198, 18, 1, 100), 40000);
    const BACKEND: Endpoint = (Ipv4Addr::new(198, 18, 1, 2), 80);
    const AT: u32 = 1000;
    const H: Inserted = Inserted { at: AT, len: 28 };

    fn segment(from: Endpoint, to: Endpoint, seq: u32, ack: u32, flags: Flags, options: &[u8], data: &[u8]) -> Vec<u8> {
        let repr = tcp::Repr { src_port: from.1, dst_port: to.1, seq, ack, flags, window: 512, options, payload: data };
        let mut l4 = vec![0u8; repr.buffer_len()];
        repr.emit(&mut l4, from.0, to.0);
        crate::nat::testkit::ip_packet(from.0, to.0, protocol::TCP, 64, &[], &l4)
    }

    fn sack(blocks: &[(u32, u32)]) -> Vec<u8> {
        let mut o = vec![NOP, NOP, SACK, (2 + 8 * blocks.len()) as u8];
        for &(l, r) in blocks {
            o.extend_from_slice(&l.to_be_bytes());
            o.extend_from_slice(&r.to_be_bytes());
        }
        o
    }

    #[test]
    fn positions_map_back_across_the_inserted_bytes_and_the_wrap() {
        assert_eq!(H.to_client(AT), AT);
        assert_eq!(H.to_client(AT + 1), AT, "an inserted byte acknowledged: where they start");
        assert_eq!(H.to_client(AT + 28), AT);
        assert_eq!(H.to_client(AT + 29), AT + 1);
        assert_eq!(H.to_client(AT - 5), AT - 5, "before them: unchanged");
        let wrap = Inserted { at: u32::MAX - 10, len: 28 };
        assert_eq!(wrap.to_client(17), u32::MAX - 10, "28 bytes across 2^32: the last inserted byte");
        assert_eq!(wrap.to_client(100), 100u32.wrapping_sub(28));
        assert!(!H.acknowledged_by(AT + 27) && H.acknowledged_by(AT + 28) && H.acknowledged_by(AT + 5000));
        assert!(wrap.acknowledged_by(18) && !wrap.acknowledged_by(16));
    }

    #[test]
    fn seq_shift_and_ack_unshift_keep_checksums_exact() {
        let mut s = tcp_packet(CLIENT, BACKEND, 64, Flags::ACK, b"client data", &[]);
        let seq = tcp::Packet::new_checked(&s[20..]).unwrap().seq();
        shift_seq(&mut s, 28).unwrap();
        assert_checksums_exact(&s);
        assert_eq!(tcp::Packet::new_checked(&s[20..]).unwrap().seq(), seq.wrapping_add(28));

        let mut r = segment(BACKEND, CLIENT, 5, AT + 128, Flags::ACK, &[], b"answer");
        assert_eq!(unshift_ack(&mut r, H), Ok(Some(AT + 128)));
        assert_checksums_exact(&r);
        assert_eq!(r, segment(BACKEND, CLIENT, 5, AT + 100, Flags::ACK, &[], b"answer"));
    }

    #[test]
    fn sack_blocks_move_back_and_those_of_inserted_bytes_alone_go() {
        let blocks = [(AT + 200, AT + 300), (AT + 5, AT + 20), (AT + 40, AT + 60)];
        let mut r = segment(BACKEND, CLIENT, 5, AT, Flags::ACK, &sack(&blocks), b"");
        unshift_ack(&mut r, H).unwrap();
        assert_checksums_exact(&r);
        let mut expected_options = sack(&[(AT + 172, AT + 272), (AT + 12, AT + 32)]);
        expected_options.extend_from_slice(&[NOP; 8]);
        assert_eq!(r, segment(BACKEND, CLIENT, 5, AT, Flags::ACK, &expected_options, b""));

        let mut only = segment(BACKEND, CLIENT, 5, AT, Flags::ACK, &sack(&[(AT + 2, AT + 28)]), b"");
        unshift_ack(&mut only, H).unwrap();
        assert_checksums_exact(&only);
        assert_eq!(&only[40..52], &[NOP; 12], "the whole option became NOPs");
    }

    #[test]
    fn an_error_quoting_a_shifted_segment_quotes_the_clients_own_number() {
        use crate::nat::testkit::icmp_packet;
        use crate::wire::icmp::{unreachable, Repr};
        let sent = segment(CLIENT, BACKEND, AT + 28 + 100, 5, Flags::ACK, &[], &[0u8; 64]);
        let router = Ipv4Addr::new(198, 18, 1, 254);
        let repr = Repr::DestUnreachable { code: unreachable::FRAG_NEEDED, next_hop_mtu: 1400, quoted: &sent[..28] };
        let mut error = icmp_packet(router, CLIENT.0, 64, &[], repr);
        unshift_quoted_seq(&mut error, H).unwrap();
        assert_checksums_exact(&error);
        assert_eq!(read_u32(&error, 20 + 8 + 20 + 4), AT + 100);
        let mut udp = icmp_packet(
            router,
            CLIENT.0,
            64,
            &[],
            Repr::DestUnreachable {
                code: unreachable::PORT,
                next_hop_mtu: 0,
                quoted: &crate::nat::testkit::udp_packet(CLIENT, BACKEND, 64, b"x", true, &[])[..28],
            },
        );
        assert_eq!(unshift_quoted_seq(&mut udp, H), Err(Refusal::UnsupportedProtocol));
    }

    #[test]
    fn fast_open_data_is_refused_and_a_plain_syn_left_alone() {
        let tfo = [FAST_OPEN, 10, 1, 2, 3, 4, 5, 6, 7, 8, NOP, NOP];
        let mut syn = segment(CLIENT, BACKEND, 77, 0, Flags::SYN, &tfo, b"GET / HTTP/1.1\r\n");
        let total = refuse_fast_open(&mut syn).unwrap().unwrap();
        assert_eq!(usize::from(total), 20 + 20 + 12);
        assert_checksums_exact(&syn[..usize::from(total)]);
        assert_eq!(&syn[..usize::from(total)], segment(CLIENT, BACKEND, 77, 0, Flags::SYN, &[NOP; 12], b"").as_slice());

        let mut plain = segment(CLIENT, BACKEND, 77, 0, Flags::SYN, &[2, 4, 5, 180], b"");
        let before = plain.clone();
        assert_eq!(refuse_fast_open(&mut plain), Ok(None));
        assert_eq!(plain, before);
        let mut data = segment(CLIENT, BACKEND, 78, 9, Flags::ACK, &[], b"data");
        assert_eq!(refuse_fast_open(&mut data), Ok(None));
    }

    #[test]
    fn built_segments_are_whole_packets() {
        let s = Segment {
            src: CLIENT,
            dst: BACKEND,
            seq: AT,
            ack: 6,
            flags: Flags::ACK | Flags::PSH,
            window: 1024,
            options: Default::default(),
        };
        let mut out = [0u8; 128];
        let n = build(&s, &[9u8; 28], &mut out).unwrap();
        assert_eq!(n, 20 + 20 + 28);
        assert_checksums_exact(&out[..n]);
        let t = tcp::Packet::new_checked(&out[20..n]).unwrap();
        assert_eq!((t.seq(), t.ack(), t.window(), t.payload()), (AT, 6, 1024, &[9u8; 28][..]));
        assert_eq!(build(&s, &[9u8; 28], &mut out[..40]), Err(Refusal::Truncated));
    }
}
