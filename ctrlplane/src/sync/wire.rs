//! The session sync protocol on the wire, version 1 (documented in docs/sync-protocol.md).
//!
//! One UDP datagram is one message: a fixed 64-byte header, a body, and a 16-byte MAC
//! (HMAC-SHA256 over everything before it, keyed with the cluster key, truncated). Every field
//! is big-endian and read and written one by one; reserved bytes must be zero. The decoder
//! checks the magic, the version and the MAC before it believes anything else, and refuses
//! (never guesses) a message whose lengths, kinds, flags or records do not add up.
//!
//! ```text
//!  0  magic "SLSY"            4  version (1)      5  kind (1 hello, 2 sessions)
//!  6  flags u16               8  node u16 (sender) 10 reserved u16 (0)
//! 12  epoch u64: the sender's boot epoch
//! 20  peer_epoch u64: the addressee's epoch as the sender knows it (0: not yet known)
//! 28  seq u64: per sender epoch and addressee, every message, from 1 (replay protection)
//! 36  data_seq u64: sessions: place in the reliable stream, from 1; hello: 0
//! 44  ack u64: the highest data_seq of the addressee's stream received with all before it
//! 52  ack_bits u64: bit i set = data_seq ack+1+i received too
//! 60  count u16: records in a sessions body, 0 in a hello
//! 62  body_len u16
//! 64  body, then the MAC (16)
//! ```
//! A hello's body: digest u64 (the scheduler input, `digest`), sessions u32 (held by the
//! sender), local IP count u16, reserved u16, then the sender's own local IPs (4 bytes each).
//! A sessions body: `count` records of `RECORD_LEN` bytes (see `SessionRecord`).

use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const MAGIC: [u8; 4] = *b"SLSY";
pub const VERSION: u8 = 1;
pub const HEADER_LEN: usize = 64;
pub const MAC_LEN: usize = 16;
pub const RECORD_LEN: usize = 36;
/// The largest message: a 1500-byte MTU less the IPv4 and UDP headers.
pub const MAX_MESSAGE: usize = 1472;
/// Records in one sessions message at most.
pub const MAX_RECORDS: usize = (MAX_MESSAGE - HEADER_LEN - MAC_LEN) / RECORD_LEN;
/// Local IPs a hello carries at most.
pub const MAX_LOCAL_IPS: usize = 64;
const HELLO_FIXED: usize = 16;

/// Flag bits of the header.
pub mod flags {
    /// The records are part of a bulk transfer (the whole table, to a peer that asked).
    pub const BULK: u16 = 1;
    /// The sender's bulk transfer to the addressee ends with this message: with every earlier
    /// data_seq received, the addressee has the sender's whole table.
    pub const BULK_DONE: u16 = 2;
    /// Hello: the sender wants the addressee's whole table.
    pub const WANT_BULK: u16 = 4;
    pub const ALL: u16 = BULK | BULK_DONE | WANT_BULK;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Hello = 1,
    Sessions = 2,
}

/// Everything but the body and the MAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Header {
    pub flags: u16,
    pub node: u16,
    pub epoch: u64,
    pub peer_epoch: u64,
    pub seq: u64,
    pub data_seq: u64,
    pub ack: u64,
    pub ack_bits: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Hello {
    pub digest: u64,
    pub sessions: u32,
    pub local_ips: Vec<Ipv4Addr>,
}

/// One session as the cluster shares it (36 bytes on the wire):
/// ```text
///  0 proto u8 (6, 17)   1 state u8   2 owner u16   4 incarnation u32
///  8 client ip+port    14 vip ip+port  20 local ip+port  26 backend ip+port (6 bytes each)
/// 32 idle_ms u32: how long ago the sender last saw a packet of it
/// ```
/// `owner` is the node that opened it and `incarnation` the low 32 bits of that node's epoch
/// then. States: 0 udp, 1 syn_sent, 2 established, 3 closing. A per-datagram UDP session has
/// backend 0.0.0.0:0 (any backend may answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionRecord {
    pub proto: u8,
    pub state: u8,
    pub owner: u16,
    pub incarnation: u32,
    pub client: SocketAddrV4,
    pub vip: SocketAddrV4,
    pub local: SocketAddrV4,
    pub backend: SocketAddrV4,
    pub idle_ms: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    Hello(Hello),
    Sessions(Vec<SessionRecord>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub header: Header,
    pub body: Body,
}

/// Why a datagram is not a message; each is counted under its own reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// Shorter than a header and a MAC, or longer than `MAX_MESSAGE`.
    Length,
    BadMagic,
    /// Another version of the protocol (the sender runs another release).
    Version(u8),
    /// Not made with our cluster key: forged, or a node with another key.
    BadMac,
    Malformed(&'static str),
}

impl DecodeError {
    /// The reason label of `sluice_sync_dropped_total`.
    pub fn reason(self) -> &'static str {
        match self {
            DecodeError::Length | DecodeError::BadMagic | DecodeError::Malformed(_) => "malformed",
            DecodeError::Version(_) => "version",
            DecodeError::BadMac => "bad_mac",
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Length => f.write_str("wrong length"),
            DecodeError::BadMagic => f.write_str("not a Sluice sync message"),
            DecodeError::Version(v) => write!(f, "protocol version {v}, this node speaks {VERSION}"),
            DecodeError::BadMac => f.write_str("authentication failed"),
            DecodeError::Malformed(why) => write!(f, "malformed: {why}"),
        }
    }
}

/// The cluster key, ready to authenticate.
#[derive(Clone)]
pub struct Key(Hmac<Sha256>);

impl Key {
    /// At least 16 bytes of secret.
    pub fn new(secret: &[u8]) -> Result<Key, String> {
        if secret.len() < 16 {
            return Err(format!("the cluster key has {} bytes; at least 16 are needed", secret.len()));
        }
        Hmac::<Sha256>::new_from_slice(secret).map(Key).map_err(|e| e.to_string())
    }

    fn tag(&self, bytes: &[u8]) -> [u8; MAC_LEN] {
        let mut mac = self.0.clone();
        mac.update(bytes);
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; MAC_LEN];
        tag.copy_from_slice(&full[..MAC_LEN]);
        tag
    }

    fn verify(&self, bytes: &[u8], tag: &[u8]) -> bool {
        let mut mac = self.0.clone();
        mac.update(bytes);
        mac.verify_truncated_left(tag).is_ok()
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(..)")
    }
}

/// Appends the MAC of `bytes` to them: for tests and fuzzing that build messages by hand.
pub fn seal(bytes: &mut Vec<u8>, key: &Key) {
    let tag = key.tag(bytes);
    bytes.extend_from_slice(&tag);
}

/// Writes `message` into `out` (cleared first), MAC included.
///
/// # Panics
/// If the body breaks the limits (`MAX_RECORDS`, `MAX_LOCAL_IPS`): the caller's bug.
pub fn encode(message: &Message, key: &Key, out: &mut Vec<u8>) {
    out.clear();
    let h = &message.header;
    let (kind, count) = match &message.body {
        Body::Hello(_) => (Kind::Hello, 0),
        Body::Sessions(records) => {
            assert!(records.len() <= MAX_RECORDS, "{} records in one message", records.len());
            (Kind::Sessions, records.len())
        }
    };
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(kind as u8);
    out.extend_from_slice(&h.flags.to_be_bytes());
    out.extend_from_slice(&h.node.to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    for field in [h.epoch, h.peer_epoch, h.seq, h.data_seq, h.ack, h.ack_bits] {
        out.extend_from_slice(&field.to_be_bytes());
    }
    out.extend_from_slice(&(count as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0]); // body_len, filled below
    debug_assert_eq!(out.len(), HEADER_LEN);
    match &message.body {
        Body::Hello(hello) => {
            assert!(hello.local_ips.len() <= MAX_LOCAL_IPS, "{} local IPs in a hello", hello.local_ips.len());
            out.extend_from_slice(&hello.digest.to_be_bytes());
            out.extend_from_slice(&hello.sessions.to_be_bytes());
            out.extend_from_slice(&(hello.local_ips.len() as u16).to_be_bytes());
            out.extend_from_slice(&0u16.to_be_bytes());
            for ip in &hello.local_ips {
                out.extend_from_slice(&ip.octets());
            }
        }
        Body::Sessions(records) => {
            for r in records {
                put_record(r, out);
            }
        }
    }
    let body_len = (out.len() - HEADER_LEN) as u16;
    out[62..64].copy_from_slice(&body_len.to_be_bytes());
    let tag = key.tag(out);
    out.extend_from_slice(&tag);
}

fn put_record(r: &SessionRecord, out: &mut Vec<u8>) {
    out.push(r.proto);
    out.push(r.state);
    out.extend_from_slice(&r.owner.to_be_bytes());
    out.extend_from_slice(&r.incarnation.to_be_bytes());
    for endpoint in [r.client, r.vip, r.local, r.backend] {
        out.extend_from_slice(&endpoint.ip().octets());
        out.extend_from_slice(&endpoint.port().to_be_bytes());
    }
    out.extend_from_slice(&r.idle_ms.to_be_bytes());
}

/// Reads a datagram; refuses anything that is not a whole, authentic version-1 message.
pub fn decode(bytes: &[u8], key: &Key) -> Result<Message, DecodeError> {
    if bytes.len() < HEADER_LEN + MAC_LEN || bytes.len() > MAX_MESSAGE {
        return Err(DecodeError::Length);
    }
    if bytes[0..4] != MAGIC {
        return Err(DecodeError::BadMagic);
    }
    if bytes[4] != VERSION {
        return Err(DecodeError::Version(bytes[4]));
    }
    let (signed, tag) = bytes.split_at(bytes.len() - MAC_LEN);
    if !key.verify(signed, tag) {
        return Err(DecodeError::BadMac);
    }
    let mut r = Reader { bytes: signed, at: 5 };
    let kind = r.u8();
    let header = Header {
        flags: r.u16(),
        node: r.u16(),
        epoch: {
            if r.u16() != 0 {
                return Err(DecodeError::Malformed("reserved header bytes set"));
            }
            r.u64()
        },
        peer_epoch: r.u64(),
        seq: r.u64(),
        data_seq: r.u64(),
        ack: r.u64(),
        ack_bits: r.u64(),
    };
    let count = usize::from(r.u16());
    let body_len = usize::from(r.u16());
    if body_len != signed.len() - HEADER_LEN {
        return Err(DecodeError::Malformed("body length does not match the datagram"));
    }
    if header.flags & !flags::ALL != 0 {
        return Err(DecodeError::Malformed("unknown flags"));
    }
    if header.node == 0 || header.epoch == 0 || header.seq == 0 {
        return Err(DecodeError::Malformed("node, epoch and seq must not be zero"));
    }
    let body = match kind {
        1 => {
            if count != 0 || header.data_seq != 0 {
                return Err(DecodeError::Malformed("a hello has no records and no data_seq"));
            }
            if header.flags & (flags::BULK | flags::BULK_DONE) != 0 {
                return Err(DecodeError::Malformed("bulk flags on a hello"));
            }
            Body::Hello(hello(&mut r, body_len)?)
        }
        2 => {
            if count * RECORD_LEN != body_len || count > MAX_RECORDS {
                return Err(DecodeError::Malformed("record count does not match the body"));
            }
            if header.data_seq == 0 {
                return Err(DecodeError::Malformed("sessions without a data_seq"));
            }
            if header.flags & flags::WANT_BULK != 0 {
                return Err(DecodeError::Malformed("want_bulk outside a hello"));
            }
            Body::Sessions((0..count).map(|_| record(&mut r)).collect::<Result<_, _>>()?)
        }
        _ => return Err(DecodeError::Malformed("unknown message kind")),
    };
    Ok(Message { header, body })
}

fn hello(r: &mut Reader, body_len: usize) -> Result<Hello, DecodeError> {
    if body_len < HELLO_FIXED {
        return Err(DecodeError::Malformed("hello body too short"));
    }
    let digest = r.u64();
    let sessions = r.u32();
    let n = usize::from(r.u16());
    if r.u16() != 0 {
        return Err(DecodeError::Malformed("reserved hello bytes set"));
    }
    if n > MAX_LOCAL_IPS || body_len != HELLO_FIXED + 4 * n {
        return Err(DecodeError::Malformed("local IP count does not match the hello"));
    }
    let local_ips = (0..n).map(|_| r.ip()).collect();
    Ok(Hello { digest, sessions, local_ips })
}

fn record(r: &mut Reader) -> Result<SessionRecord, DecodeError> {
    let rec = SessionRecord {
        proto: r.u8(),
        state: r.u8(),
        owner: r.u16(),
        incarnation: r.u32(),
        client: r.endpoint(),
        vip: r.endpoint(),
        local: r.endpoint(),
        backend: r.endpoint(),
        idle_ms: r.u32(),
    };
    // The session states of `dataplane::session::State`: UDP 0 (confirmed) and 4 (one
    // datagram); TCP 1..=3 and 5..=8.
    let udp_state = matches!(rec.state, 0 | 4);
    match rec.proto {
        17 if udp_state => {}
        6 if matches!(rec.state, 1..=3 | 5..=8) => {}
        6 | 17 => return Err(DecodeError::Malformed("state does not fit the protocol")),
        _ => return Err(DecodeError::Malformed("protocol is neither tcp nor udp")),
    }
    if rec.owner == 0 {
        return Err(DecodeError::Malformed("record without an owner"));
    }
    if [rec.client, rec.vip, rec.local].iter().any(|e| e.port() == 0 || e.ip().is_unspecified()) {
        return Err(DecodeError::Malformed("record with an unspecified client, vip or local endpoint"));
    }
    let wildcard = rec.backend == SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0);
    if (rec.backend.port() == 0 || rec.backend.ip().is_unspecified()) && !(wildcard && rec.proto == 17) {
        return Err(DecodeError::Malformed("record with an unspecified backend"));
    }
    Ok(rec)
}

/// Reads fields in order from a buffer whose length was checked beforehand.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        out.copy_from_slice(&self.bytes[self.at..self.at + N]);
        self.at += N;
        out
    }

    fn u8(&mut self) -> u8 {
        self.take::<1>()[0]
    }

    fn u16(&mut self) -> u16 {
        u16::from_be_bytes(self.take())
    }

    fn u32(&mut self) -> u32 {
        u32::from_be_bytes(self.take())
    }

    fn u64(&mut self) -> u64 {
        u64::from_be_bytes(self.take())
    }

    fn ip(&mut self) -> Ipv4Addr {
        Ipv4Addr::from(self.take::<4>())
    }

    fn endpoint(&mut self) -> SocketAddrV4 {
        let ip = self.ip();
        SocketAddrV4::new(ip, self.u16())
    }
}

#[cfg(test)]
mod tests;
