//! The byte work of the SYN proxy (`synproxy = true`): what a client's SYN offers, the SYN+ACK
//! that answers it in place (a cookie for its sequence number), the options of the segments
//! Sluice then writes to the backend, and the mapping between the two handshakes for the
//! connection's life: the backend's sequence numbers and timestamps as the client knows them
//! (Sluice's cookie and clock), and the backend's window in the scale Sluice offered the client.
//!
//! Edits of established segments go through `shift::edit_header` (the checksum follows the
//! header's sum); the SYN+ACK is written anew with full checksums (it is small).

use crate::wire::checksum;
use crate::wire::ipv4::{self, offset, protocol};
use crate::wire::tcp::offset::{ACK, FLAGS, SEQ, WINDOW};
use crate::wire::tcp::Flags;
use crate::wire::{read_u16, tcp, write_u16};

use super::shift::{edit_header, options, tcp_header, MSS, NOP, SACK};
use super::{read_u32, write_u32, Refusal};

const WINDOW_SCALE: u8 = 3;
const SACK_PERMITTED: u8 = 4;
const TIMESTAMP: u8 = 8;
const SYN: u8 = Flags::SYN.bits();
const RST: u8 = Flags::RST.bits();
const ACK_FLAG: u8 = Flags::ACK.bits();
const ECE: u8 = Flags::ECE.bits();
const CWR: u8 = Flags::CWR.bits();
/// The MSS a SYN without the option stands for (RFC 9293).
pub const DEFAULT_MSS: u16 = 536;

/// What a client's SYN offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offer {
    pub client_isn: u32,
    pub mss: u16,
    pub window_scale: Option<u8>,
    pub sack: bool,
    /// Its timestamp value (the echo is 0 in a SYN).
    pub tsval: Option<u32>,
    /// ECN setup (ECE and CWR both set).
    pub ecn: bool,
    pub window: u16,
}

/// TCP options for a segment Sluice writes: at most 20 bytes, a multiple of 4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Options {
    bytes: [u8; 20],
    len: u8,
}

impl Options {
    /// The options of a SYN or SYN+ACK: MSS; SACK permitted and timestamps (the echo `tsecr`)
    /// when given; window scale when given; NOPs between, as Linux lays them out.
    pub fn syn(mss: u16, window_scale: Option<u8>, sack: bool, timestamp: Option<(u32, u32)>) -> Options {
        let mut o = Options::default();
        o.push(&[MSS, 4]);
        o.push(&mss.to_be_bytes());
        match (sack, timestamp) {
            (true, Some(ts)) => o.push_timestamp(&[SACK_PERMITTED, 2], ts),
            (false, Some(ts)) => o.push_timestamp(&[NOP, NOP], ts),
            (true, None) => o.push(&[NOP, NOP, SACK_PERMITTED, 2]),
            (false, None) => {}
        }
        if let Some(scale) = window_scale {
            o.push(&[NOP, WINDOW_SCALE, 3, scale.min(14)]);
        }
        o
    }

    /// The options of a segment after the handshake: the timestamp alone, if any.
    pub fn timestamp(timestamp: Option<(u32, u32)>) -> Options {
        let mut o = Options::default();
        if let Some(ts) = timestamp {
            o.push_timestamp(&[NOP, NOP], ts);
        }
        o
    }

    fn push_timestamp(&mut self, lead: &[u8; 2], (val, ecr): (u32, u32)) {
        self.push(lead);
        self.push(&[TIMESTAMP, 10]);
        self.push(&val.to_be_bytes());
        self.push(&ecr.to_be_bytes());
    }

    fn push(&mut self, bytes: &[u8]) {
        let at = usize::from(self.len);
        self.bytes[at..at + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len() as u8;
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// Each option of a TCP header's option bytes as (kind, value bytes, offset).
fn each_option(bytes: &[u8], mut f: impl FnMut(u8, &[u8], usize)) {
    for (kind, at, len) in options(bytes) {
        f(kind, &bytes[at + 2..at + len], at);
    }
}

/// What the SYN in `ip` offers (a TCP packet `inspect` accepted).
pub fn offer(ip: &[u8]) -> Result<Offer, Refusal> {
    let (ihl, len, _) = tcp_header(ip)?;
    let t = &ip[ihl..ihl + len];
    let mut o = Offer {
        client_isn: read_u32(t, SEQ),
        mss: DEFAULT_MSS,
        window_scale: None,
        sack: false,
        tsval: None,
        ecn: t[FLAGS] & (ECE | CWR) == ECE | CWR,
        window: read_u16(t, WINDOW),
    };
    each_option(&t[tcp::HEADER_LEN..], |kind, value, _| match (kind, value.len()) {
        (MSS, 2) => o.mss = u16::from_be_bytes([value[0], value[1]]),
        (WINDOW_SCALE, 1) => o.window_scale = Some(value[0].min(14)),
        (SACK_PERMITTED, 0) => o.sack = true,
        (TIMESTAMP, 8) => o.tsval = Some(read_u32(value, 0)),
        _ => {}
    });
    Ok(o)
}

/// A segment's timestamp option, (value, echo), if it has one.
pub fn timestamp(ip: &[u8]) -> Option<(u32, u32)> {
    let (ihl, len, _) = tcp_header(ip).ok()?;
    let mut found = None;
    each_option(&ip[ihl + tcp::HEADER_LEN..ihl + len], |kind, value, _| {
        if kind == TIMESTAMP && value.len() == 8 {
            found = Some((read_u32(value, 0), read_u32(value, 4)));
        }
    });
    found
}

/// Turns the SYN in `ip` (a TCP packet `inspect` accepted, in a buffer of `ip.len()` bytes,
/// Ethernet padding included) into the SYN+ACK that answers it: addresses and ports swapped,
/// sequence number `cookie`, acknowledging the client's, `window`, `options`, ECE if `ecn`,
/// TTL 64, no IP options, no data; checksums computed whole. Returns its IP length; refused
/// if it does not fit the buffer.
pub fn answer_syn(ip: &mut [u8], cookie: u32, window: u16, options: &Options, ecn: bool) -> Result<usize, Refusal> {
    let (ihl, _, _) = tcp_header(ip)?;
    let p = ipv4::Packet::new_checked(&*ip)?;
    let (src, dst) = (p.src(), p.dst());
    let t = &ip[ihl..];
    let (sport, dport, client_isn) = (read_u16(t, 0), read_u16(t, 2), read_u32(t, SEQ));
    let tcp_len = tcp::HEADER_LEN + options.as_slice().len();
    let total = ipv4::MIN_HEADER_LEN + tcp_len;
    if ip.len() < total {
        return Err(Refusal::Truncated);
    }
    let header = ipv4::Repr { src: dst, dst: src, protocol: protocol::TCP, ttl: 64, payload_len: tcp_len };
    header.emit(ip);
    write_u16(ip, offset::FLAGS_FRAG, ipv4::DONT_FRAGMENT);
    let c = checksum::ipv4_header(&ip[..ipv4::MIN_HEADER_LEN]);
    write_u16(ip, offset::CHECKSUM, c);
    let flags = tcp::Flags::SYN | tcp::Flags::ACK | if ecn { tcp::Flags::ECE } else { tcp::Flags(0) };
    let repr = tcp::Repr {
        src_port: dport,
        dst_port: sport,
        seq: cookie,
        ack: client_isn.wrapping_add(1),
        flags,
        window,
        options: options.as_slice(),
        payload: &[],
    };
    repr.emit(&mut ip[ipv4::MIN_HEADER_LEN..total], dst, src);
    Ok(total)
}

/// How an established connection's numbers differ between the client's handshake (with
/// Sluice) and the backend's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Mapping {
    /// The cookie less the backend's initial sequence number: backend -> client sequence
    /// numbers gain it, client -> backend acknowledgements (and SACK blocks) lose it.
    pub seq: u32,
    /// Sluice's timestamp clock less the backend's: backend -> client values gain it, client ->
    /// backend echoes lose it.
    pub ts: u32,
    /// The backend's window scale and the one Sluice offered the client: backend -> client
    /// windows are rescaled from one to the other.
    pub backend_scale: u8,
    pub client_scale: u8,
}

/// A client's segment to the backend: acknowledgement, SACK blocks and timestamp echo mapped.
pub fn map_to_backend(ip: &mut [u8], m: &Mapping) -> Result<(), Refusal> {
    edit_header(ip, |h| {
        if h[FLAGS] & ACK_FLAG != 0 {
            write_u32(h, ACK, read_u32(h, ACK).wrapping_sub(m.seq));
        }
        let mut edits = [(0usize, 0u8); 8];
        let mut n = 0;
        each_option(&h[tcp::HEADER_LEN..], |kind, value, at| {
            if (kind == SACK || kind == TIMESTAMP) && n < edits.len() && value.len() % 4 == 0 {
                edits[n] = (at, kind);
                n += 1;
            }
        });
        for &(at, kind) in &edits[..n] {
            let at = tcp::HEADER_LEN + at;
            let len = usize::from(h[at + 1]);
            if kind == SACK {
                for edge in (at + 2..at + len).step_by(4) {
                    write_u32(h, edge, read_u32(h, edge).wrapping_sub(m.seq));
                }
            } else if len == 10 {
                write_u32(h, at + 6, read_u32(h, at + 6).wrapping_sub(m.ts));
            }
        }
    })
}

/// A backend's segment to the client: sequence number, timestamp value and window mapped.
pub fn map_to_client(ip: &mut [u8], m: &Mapping) -> Result<(), Refusal> {
    edit_header(ip, |h| {
        write_u32(h, SEQ, read_u32(h, SEQ).wrapping_add(m.seq));
        if h[FLAGS] & (SYN | RST) == 0 && m.backend_scale != m.client_scale {
            let window = u32::from(read_u16(h, WINDOW)) << m.backend_scale >> m.client_scale;
            write_u16(h, WINDOW, window.min(0xffff) as u16);
        }
        let mut ts_at = None;
        each_option(&h[tcp::HEADER_LEN..], |kind, value, at| {
            if kind == TIMESTAMP && value.len() == 8 {
                ts_at = Some(tcp::HEADER_LEN + at + 2);
            }
        });
        if let Some(at) = ts_at {
            write_u32(h, at, read_u32(h, at).wrapping_add(m.ts));
        }
    })
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::nat::testkit::{assert_checksums_exact, ip_packet, Endpoint};
    use crate::wire::tcp::Flags;

    const CLIENT: Endpoint = (Ipv4Addr::new(198, 18, 0, 2), 40000);
    const VIP: Endpoint = (Ipv4Addr::new(198, 18, 0, 10), 80);

    fn seg(from: Endpoint, to: Endpoint, seq: u32, ack: u32, flags: Flags, window: u16, options: &[u8]) -> Vec<u8> {
        let repr = tcp::Repr { src_port: from.1, dst_port: to.1, seq, ack, flags, window, options, payload: &[] };
        let mut l4 = vec![0u8; repr.buffer_len()];
        repr.emit(&mut l4, from.0, to.0);
        ip_packet(from.0, to.0, protocol::TCP, 64, &[], &l4)
    }

    /// Linux's SYN options: MSS 1460, SACK permitted, timestamps, window scale 7.
    fn linux_syn() -> Vec<u8> {
        let options = [2, 4, 5, 180, 4, 2, 8, 10, 0, 0, 0, 77, 0, 0, 0, 0, 1, 3, 3, 7];
        seg(CLIENT, VIP, 1000, 0, Flags::SYN | Flags::ECE | Flags::CWR, 64240, &options)
    }

    #[test]
    fn a_syns_offer_is_read_whole() {
        let o = offer(&linux_syn()).unwrap();
        assert_eq!(
            o,
            Offer {
                client_isn: 1000,
                mss: 1460,
                window_scale: Some(7),
                sack: true,
                tsval: Some(77),
                ecn: true,
                window: 64240
            }
        );
        let bare = offer(&seg(CLIENT, VIP, 5, 0, Flags::SYN, 1024, &[])).unwrap();
        assert_eq!((bare.mss, bare.window_scale, bare.sack, bare.tsval, bare.ecn), (536, None, false, None, false));
    }

    #[test]
    fn the_answer_is_a_syn_ack_from_the_vip_with_the_cookie() {
        let mut ip = linux_syn();
        let options = Options::syn(1460, Some(7), true, Some((0x1234_5640, 77)));
        let n = answer_syn(&mut ip, 0xc00c_1e00, 65535, &options, true).unwrap();
        let expected =
            seg(VIP, CLIENT, 0xc00c_1e00, 1001, Flags::SYN | Flags::ACK | Flags::ECE, 65535, options.as_slice());
        let mut expected = expected;
        expected[6] = 0x40; // DF
        expected[10..12].fill(0);
        let c = checksum::ipv4_header(&expected[..20]);
        expected[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(&ip[..n], expected.as_slice());
        assert_checksums_exact(&ip[..n]);
        assert_eq!(timestamp(&ip[..n]), Some((0x1234_5640, 77)));

        // A bare SYN in a minimal frame (6 bytes of Ethernet padding) takes an MSS option.
        let mut bare = seg(CLIENT, VIP, 5, 0, Flags::SYN, 1024, &[]);
        bare.extend_from_slice(&[0; 6]);
        let n = answer_syn(&mut bare, 1, 65535, &Options::syn(536, None, false, None), false).unwrap();
        assert_eq!(n, 44);
        assert_checksums_exact(&bare[..n]);
        let mut tight = seg(CLIENT, VIP, 5, 0, Flags::SYN, 1024, &[]);
        assert_eq!(answer_syn(&mut tight, 1, 65535, &options, false), Err(Refusal::Truncated));
    }

    #[test]
    fn established_segments_map_between_the_two_handshakes() {
        let m = Mapping { seq: 0x1000, ts: 500, backend_scale: 9, client_scale: 7 };
        let sack = [1, 1, 5, 10, 0, 0, 0x30, 0, 0, 0, 0x40, 0];
        let ts = [1, 1, 8, 10, 0, 0, 0, 9, 0, 0, 3, 232];
        let mut to_backend = seg(CLIENT, VIP, 7, 0x5000, Flags::ACK, 100, &[sack, ts].concat());
        map_to_backend(&mut to_backend, &m).unwrap();
        assert_checksums_exact(&to_backend);
        let sack_mapped = [1, 1, 5, 10, 0, 0, 0x20, 0, 0, 0, 0x30, 0];
        let ts_mapped = [1, 1, 8, 10, 0, 0, 0, 9, 0, 0, 1, 244];
        assert_eq!(to_backend, seg(CLIENT, VIP, 7, 0x4000, Flags::ACK, 100, &[sack_mapped, ts_mapped].concat()));

        let mut to_client = seg(VIP, CLIENT, 0x4000, 8, Flags::ACK, 1000, &ts);
        map_to_client(&mut to_client, &m).unwrap();
        assert_checksums_exact(&to_client);
        let ts_back = [1, 1, 8, 10, 0, 0, 1, 253, 0, 0, 3, 232];
        assert_eq!(to_client, seg(VIP, CLIENT, 0x5000, 8, Flags::ACK, 4000, &ts_back), "window 1000 << 9 >> 7");
        let mut wide = seg(VIP, CLIENT, 0, 8, Flags::ACK, 0xffff, &[]);
        map_to_client(&mut wide, &Mapping { backend_scale: 14, client_scale: 0, ..m }).unwrap();
        assert_eq!(read_u16(&wide[20..], WINDOW), 0xffff, "saturated");
    }
}
