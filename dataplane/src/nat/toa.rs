//! TOA (`client_address = "toa"`): the client's address as TCP option 254, length 8 (client
//! port, then client IPv4 address), first among the options of the client's segments to the
//! backend, which servers with the TOA kernel module read back; the backend's SYN+ACK gets an
//! MSS 8 lower, so that a full-sized segment still fits with the option; an option 254 the
//! client sent itself never reaches the backend.
//!
//! Edits of the TCP header update the checksum by the header's sum before and after (at most 60
//! bytes summed; the payload moves by a multiple of 4, so its words sum as before).

use std::net::Ipv4Addr;

use crate::wire::checksum::Delta;
use crate::wire::ipv4::offset;
use crate::wire::tcp::offset::{CHECKSUM, DATA_OFF};
use crate::wire::{read_u16, tcp, write_u16};

use super::shift::{edit_header, header_sum, options, tcp_header, MSS, NOP, SACK};
use super::Refusal;

/// The option's kind and length.
pub const KIND: u8 = 254;
pub const LEN: usize = 8;
/// TCP options take at most 40 bytes.
const MAX_OPTIONS: usize = 40;

/// What `insert` made room with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Insert {
    /// The option went in (padding NOPs may have given way).
    Added,
    /// The option went in, and that many SACK blocks of the client's gave way.
    SackDropped(usize),
    /// No room even without NOPs and SACK blocks: the segment is left as it came.
    NoRoom,
}

/// The options of `bytes` as (offset, length) pairs (`shift::options`), at most 20.
fn parse(bytes: &[u8]) -> Option<([(u8, u8); 20], usize)> {
    let mut found = [(0u8, 0u8); 20];
    let mut n = 0;
    for (_, at, len) in options(bytes) {
        *found.get_mut(n)? = (at as u8, len as u8);
        n += 1;
    }
    Some((found, n))
}

/// Turns every option `kind` in the TCP header of `ip` into NOPs, in place; returns whether
/// there was one.
pub fn remove(ip: &mut [u8], kind: u8) -> Result<bool, Refusal> {
    // Nearly every segment has none: looked for first, so that only those with one are edited.
    let (ihl, len, _) = tcp_header(ip)?;
    if !options(&ip[ihl + tcp::HEADER_LEN..ihl + len]).any(|(k, _, _)| k == kind) {
        return Ok(false);
    }
    let mut removed = false;
    edit_header(ip, |header| {
        let Some((found, n)) = parse(&header[tcp::HEADER_LEN..]) else { return };
        for &(at, olen) in &found[..n] {
            let at = tcp::HEADER_LEN + usize::from(at);
            if header[at] == kind {
                header[at..at + usize::from(olen)].fill(NOP);
                removed = true;
            }
        }
    })?;
    Ok(removed)
}

/// Lowers the MSS option of a SYN+ACK by `by` bytes, in place (none: nothing to do).
pub fn lower_mss(ip: &mut [u8], by: u16) -> Result<(), Refusal> {
    edit_header(ip, |header| {
        let Some((found, n)) = parse(&header[tcp::HEADER_LEN..]) else { return };
        for &(at, olen) in &found[..n] {
            let at = tcp::HEADER_LEN + usize::from(at);
            if header[at] == MSS && olen == 4 {
                let old = read_u16(header, at + 2);
                write_u16(header, at + 2, old.saturating_sub(by));
            }
        }
    })
}

/// Puts the TOA option for `client` first among the options of the TCP segment in `buf`,
/// whose first `room` bytes are free (`room` >= 8) and whose frame (`l2` bytes of link header,
/// then the IP packet) follows them. The options are written anew: the TOA option, then the
/// segment's own in their order without NOPs and without any option 254, SACK blocks dropped
/// from the last while they do not fit, NOPs to a multiple of 4. The headers before the options
/// move by the difference, so the frame then starts at the returned offset into `buf`; also
/// returned: the new IP total length and what gave way. With `Insert::NoRoom` nothing changed.
pub fn insert(
    buf: &mut [u8],
    l2: usize,
    room: usize,
    client: (Ipv4Addr, u16),
) -> Result<(usize, u16, Insert), Refusal> {
    let ip = buf.get(room + l2..).ok_or(Refusal::Truncated)?;
    let (ihl, len, total) = tcp_header(ip)?;
    let old = &ip[ihl..ihl + len];
    let (found, n) = parse(&old[tcp::HEADER_LEN..]).ok_or(Refusal::BadHeader)?;

    // The new options: TOA, then the segment's own (SACK blocks trimmed to fit).
    let mut options = [NOP; MAX_OPTIONS + LEN];
    options[..2].copy_from_slice(&[KIND, LEN as u8]);
    options[2..4].copy_from_slice(&client.1.to_be_bytes());
    options[4..8].copy_from_slice(&client.0.octets());
    let kept: usize = found[..n]
        .iter()
        .filter(|&&(at, _)| old[tcp::HEADER_LEN + usize::from(at)] != KIND)
        .map(|&(_, l)| usize::from(l))
        .sum();
    let mut excess = (LEN + kept).saturating_sub(MAX_OPTIONS);
    let mut dropped = 0;
    let mut w = LEN;
    for &(at, olen) in &found[..n] {
        let from = tcp::HEADER_LEN + usize::from(at);
        let (kind, mut olen) = (old[from], usize::from(olen));
        if kind == KIND {
            continue;
        }
        if kind == SACK && excess > 0 {
            let blocks = (olen - 2) / 8;
            let gone = excess.div_ceil(8).min(blocks);
            dropped += gone;
            excess = excess.saturating_sub(gone * 8);
            olen -= gone * 8;
            if olen <= 2 {
                continue; // no block left: the option goes
            }
            options[w] = SACK;
            options[w + 1] = olen as u8;
            options[w + 2..w + olen].copy_from_slice(&old[from + 2..from + olen]);
        } else {
            options[w..w + olen].copy_from_slice(&old[from..from + olen]);
        }
        w += olen;
    }
    if excess > 0 || w > MAX_OPTIONS {
        return Ok((room, total as u16, Insert::NoRoom));
    }
    let new_options = w.div_ceil(4) * 4;
    let new_len = tcp::HEADER_LEN + new_options;
    let delta = new_len as isize - len as isize;
    let start = usize::try_from(room as isize - delta).map_err(|_| Refusal::Truncated)?;
    let new_total = u16::try_from(total as isize + delta).map_err(|_| Refusal::BadHeader)?;

    // Sums before, then the fixed headers moved to their new place and the options written.
    let old_sum = header_sum(old);
    let tcp_sum = read_u16(old, CHECKSUM);
    let old_l4 = (total - ihl) as u16;
    let ip_sum = read_u16(ip, offset::CHECKSUM);
    let fixed = l2 + ihl + tcp::HEADER_LEN;
    buf.copy_within(room..room + fixed, start);
    let frame = &mut buf[start..];
    let ip = &mut frame[l2..];
    write_u16(ip, offset::TOTAL_LEN, new_total);
    write_u16(ip, offset::CHECKSUM, Delta::new().u16(total as u16, new_total).apply(ip_sum));
    let header = &mut ip[ihl..ihl + new_len];
    header[DATA_OFF] = ((new_len / 4) as u8) << 4 | (header[DATA_OFF] & 0x0f);
    header[tcp::HEADER_LEN..].copy_from_slice(&options[..new_options]);
    let new_sum = header_sum(header);
    let new_l4 = new_total - ihl as u16;
    let change = Delta::new().u16(old_sum, new_sum).u16(old_l4, new_l4);
    write_u16(header, CHECKSUM, change.apply(tcp_sum));
    let result = if dropped > 0 { Insert::SackDropped(dropped) } else { Insert::Added };
    Ok((start, new_total, result))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nat::testkit::{assert_checksums_exact, ip_packet, Endpoint};
    use crate::wire::ipv4::protocol;
    use crate::wire::tcp::Flags;

    const LOCAL: Endpoint = (Ipv4Addr::new(198, 18, 1, 101), 40000);
    const BACKEND: Endpoint = (Ipv4Addr::new(198, 18, 1, 2), 80);
    const CLIENT: (Ipv4Addr, u16) = (Ipv4Addr::new(198, 18, 0, 2), 51000);
    const L2: usize = 14;

    fn seg(flags: Flags, options: &[u8], data: &[u8]) -> Vec<u8> {
        let repr = tcp::Repr {
            src_port: LOCAL.1,
            dst_port: BACKEND.1,
            seq: 7,
            ack: 9,
            flags,
            window: 512,
            options,
            payload: data,
        };
        let mut l4 = vec![0u8; repr.buffer_len()];
        repr.emit(&mut l4, LOCAL.0, BACKEND.0);
        ip_packet(LOCAL.0, BACKEND.0, protocol::TCP, 64, &[], &l4)
    }

    /// `room` free bytes, a link header, then `ip`.
    fn framed(room: usize, ip: &[u8]) -> Vec<u8> {
        let mut b = vec![0xee; room];
        b.extend((0..L2 as u8).map(|i| i + 1));
        b.extend_from_slice(ip);
        b
    }

    fn toa() -> [u8; 8] {
        [KIND, 8, 0xc7, 0x38, 198, 18, 0, 2]
    }

    /// Runs `insert` with 8 bytes of room; the resulting IP packet.
    fn inserted(ip: &[u8]) -> (Vec<u8>, Insert) {
        let mut buf = framed(8, ip);
        let (start, total, result) = insert(&mut buf, L2, 8, CLIENT).unwrap();
        assert_eq!(&buf[start..start + L2], (1..=L2 as u8).collect::<Vec<_>>().as_slice(), "link header intact");
        (buf[start + L2..start + L2 + usize::from(total)].to_vec(), result)
    }

    #[test]
    fn the_option_goes_first_and_the_rest_follows_in_order() {
        let ts = [NOP, NOP, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2];
        let (ip, result) = inserted(&seg(Flags::ACK, &ts, b"GET / HTTP/1.1\r\n"));
        assert_eq!(result, Insert::Added);
        assert_checksums_exact(&ip);
        let mut options = toa().to_vec();
        options.extend_from_slice(&[8, 10, 0, 0, 0, 1, 0, 0, 0, 2, NOP, NOP]);
        assert_eq!(ip, seg(Flags::ACK, &options, b"GET / HTTP/1.1\r\n"), "NOPs gave way");
        let (bare, _) = inserted(&seg(Flags::ACK, &[], b""));
        assert_eq!(bare, seg(Flags::ACK, &toa(), b""));
        assert_checksums_exact(&bare);
    }

    #[test]
    fn sack_blocks_give_way_when_the_options_are_full() {
        // Timestamps and three SACK blocks: 12 + 28 = 40 bytes, no room for 8 more.
        let mut options = vec![NOP, NOP, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2, NOP, NOP, SACK, 26];
        for b in 0..3u32 {
            options.extend_from_slice(&(100 * b + 100).to_be_bytes());
            options.extend_from_slice(&(100 * b + 150).to_be_bytes());
        }
        let (ip, result) = inserted(&seg(Flags::ACK, &options, b"x"));
        assert_eq!(result, Insert::SackDropped(1));
        assert_checksums_exact(&ip);
        let mut expected = toa().to_vec();
        expected.extend_from_slice(&[8, 10, 0, 0, 0, 1, 0, 0, 0, 2, SACK, 18]);
        for b in 0..2u32 {
            expected.extend_from_slice(&(100 * b + 100).to_be_bytes());
            expected.extend_from_slice(&(100 * b + 150).to_be_bytes());
        }
        assert_eq!(ip, seg(Flags::ACK, &expected, b"x"));
    }

    #[test]
    fn a_forged_option_is_replaced_and_removed() {
        let forged = [KIND, 8, 0, 1, 10, 0, 0, 1];
        let (ip, _) = inserted(&seg(Flags::ACK, &forged, b"data"));
        assert_eq!(ip, seg(Flags::ACK, &toa(), b"data"), "ours, and only ours");
        let mut syn = seg(Flags::SYN, &[2, 4, 5, 180, KIND, 8, 0, 1, 10, 0, 0, 1], b"");
        assert_eq!(remove(&mut syn, KIND), Ok(true));
        assert_checksums_exact(&syn);
        assert_eq!(syn, seg(Flags::SYN, &[2, 4, 5, 180, NOP, NOP, NOP, NOP, NOP, NOP, NOP, NOP], b""));
        assert_eq!(remove(&mut syn, KIND), Ok(false));
    }

    #[test]
    fn options_that_cannot_make_room_leave_the_segment_alone() {
        // 40 bytes of an unknown option: nothing may give way.
        let mut options = vec![99u8, 40];
        options.extend_from_slice(&[0u8; 38]);
        let ip = seg(Flags::ACK, &options, b"");
        let mut buf = framed(8, &ip);
        let before = buf.clone();
        let (start, _, result) = insert(&mut buf, L2, 8, CLIENT).unwrap();
        assert_eq!((start, result), (8, Insert::NoRoom));
        assert_eq!(buf, before);
    }

    #[test]
    fn the_syn_acks_mss_is_lowered_by_eight() {
        let mut syn_ack = seg(Flags::SYN | Flags::ACK, &[2, 4, 0x05, 0xb4, NOP, NOP, 4, 2], b"");
        lower_mss(&mut syn_ack, 8).unwrap();
        assert_checksums_exact(&syn_ack);
        assert_eq!(syn_ack, seg(Flags::SYN | Flags::ACK, &[2, 4, 0x05, 0xac, NOP, NOP, 4, 2], b""));
    }
}
