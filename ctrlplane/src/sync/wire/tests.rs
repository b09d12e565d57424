use super::*;

fn key() -> Key {
    Key::new(b"0123456789abcdef-cluster").unwrap()
}

fn ep(a: u8, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, a), port)
}

fn record(n: u16) -> SessionRecord {
    SessionRecord {
        proto: 6,
        state: 2,
        owner: 1,
        incarnation: 0xdead_beef,
        client: SocketAddrV4::new(Ipv4Addr::new(198, 18, 2, 2), 40_000 + n),
        vip: SocketAddrV4::new(Ipv4Addr::new(198, 18, 10, 10), 80),
        local: SocketAddrV4::new(Ipv4Addr::new(198, 18, 12, 1), 1024 + n),
        backend: SocketAddrV4::new(Ipv4Addr::new(198, 18, 1, 2), 80),
        idle_ms: 1500,
    }
}

fn header() -> Header {
    Header {
        flags: 0,
        node: 2,
        epoch: 0x0102_0304_0506_0708,
        peer_epoch: 77,
        seq: 9,
        data_seq: 0,
        ack: 5,
        ack_bits: 0b1010,
    }
}

fn hello() -> Message {
    Message {
        header: Header { flags: flags::WANT_BULK, ..header() },
        body: Body::Hello(Hello { digest: 0xfeed, sessions: 12, local_ips: vec![ep(11, 0).ip().to_owned()] }),
    }
}

fn sessions(n: u16) -> Message {
    Message {
        header: Header { data_seq: 4, flags: flags::BULK, ..header() },
        body: Body::Sessions((0..n).map(record).collect()),
    }
}

fn bytes(m: &Message) -> Vec<u8> {
    let mut out = Vec::new();
    encode(m, &key(), &mut out);
    out
}

#[test]
fn messages_round_trip() {
    for m in [hello(), sessions(0), sessions(1), sessions(MAX_RECORDS as u16)] {
        let b = bytes(&m);
        assert!(b.len() <= MAX_MESSAGE, "{} bytes", b.len());
        assert_eq!(decode(&b, &key()), Ok(m));
    }
    let udp = SessionRecord { proto: 17, state: 0, backend: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0), ..record(1) };
    let m = Message { header: Header { data_seq: 1, ..header() }, body: Body::Sessions(vec![udp]) };
    assert_eq!(decode(&bytes(&m), &key()), Ok(m), "a per-datagram session has a wildcard backend");
}

#[test]
fn the_layout_is_big_endian_field_by_field() {
    let b = bytes(&sessions(1));
    assert_eq!(&b[0..4], b"SLSY");
    assert_eq!((b[4], b[5]), (1, 2), "version, kind");
    assert_eq!(&b[6..8], &[0, 1], "flags: bulk");
    assert_eq!(&b[8..10], &[0, 2], "node");
    assert_eq!(&b[12..20], &[1, 2, 3, 4, 5, 6, 7, 8], "epoch");
    assert_eq!(&b[28..36], &9u64.to_be_bytes(), "seq");
    assert_eq!(&b[36..44], &4u64.to_be_bytes(), "data_seq");
    assert_eq!(&b[44..52], &5u64.to_be_bytes(), "ack");
    assert_eq!(&b[60..64], &[0, 1, 0, 36], "count, body_len");
    let r = &b[64..100];
    assert_eq!(&r[0..4], &[6, 2, 0, 1], "proto, state, owner");
    assert_eq!(&r[4..8], &[0xde, 0xad, 0xbe, 0xef]);
    assert_eq!(&r[8..14], &[198, 18, 2, 2, 0x9c, 0x40], "client 198.18.2.2:40000");
    assert_eq!(&r[32..36], &1500u32.to_be_bytes(), "idle_ms");
    assert_eq!(b.len(), 64 + 36 + 16, "MAC last");
    assert_eq!(MAX_RECORDS, 38);
}

#[test]
fn every_byte_is_authenticated() {
    let good = bytes(&sessions(2));
    for i in 5..good.len() {
        let mut bad = good.clone();
        bad[i] ^= 0x40;
        let e = decode(&bad, &key()).unwrap_err();
        assert!(e == DecodeError::BadMac || e == DecodeError::Version(bad[4]), "byte {i}: {e:?}");
    }
    let other = Key::new(b"another-key-0123456789").unwrap();
    assert_eq!(decode(&good, &other), Err(DecodeError::BadMac));
    assert_eq!(DecodeError::BadMac.reason(), "bad_mac");
}

#[test]
fn the_envelope_is_checked_before_the_mac() {
    let good = bytes(&hello());
    assert_eq!(decode(&good[..60], &key()), Err(DecodeError::Length));
    assert_eq!(decode(&vec![0u8; MAX_MESSAGE + 1], &key()), Err(DecodeError::Length));
    let mut magic = good.clone();
    magic[0] = b'X';
    assert_eq!(decode(&magic, &key()), Err(DecodeError::BadMagic));
    let mut version = good.clone();
    version[4] = 2;
    assert_eq!(decode(&version, &key()), Err(DecodeError::Version(2)));
    assert!(Key::new(b"short").is_err(), "a key of fewer than 16 bytes");
}

/// Re-signs a tampered message so that the checks behind the MAC are what refuses it.
fn resigned(mut b: Vec<u8>) -> Vec<u8> {
    b.truncate(b.len() - MAC_LEN);
    seal(&mut b, &key());
    b
}

#[test]
fn authentic_but_inconsistent_messages_are_refused() {
    let refuse = |b: Vec<u8>| decode(&resigned(b), &key()).unwrap_err();
    let s = bytes(&sessions(1));
    let at_record = |offset: usize, value: u8| {
        let mut b = s.clone();
        b[64 + offset] = value;
        refuse(b)
    };
    assert_eq!(at_record(0, 1), DecodeError::Malformed("protocol is neither tcp nor udp"));
    assert_eq!(at_record(1, 0), DecodeError::Malformed("state does not fit the protocol"));
    assert_eq!(at_record(1, 4), DecodeError::Malformed("state does not fit the protocol"));
    let mut no_owner = s.clone();
    no_owner[66..68].copy_from_slice(&[0, 0]);
    assert_eq!(refuse(no_owner), DecodeError::Malformed("record without an owner"));
    let mut tcp_wildcard = s.clone();
    tcp_wildcard[64 + 26..64 + 32].copy_from_slice(&[0; 6]);
    assert_eq!(refuse(tcp_wildcard), DecodeError::Malformed("record with an unspecified backend"));
    let mut kind = s.clone();
    kind[5] = 3;
    assert_eq!(refuse(kind), DecodeError::Malformed("unknown message kind"));
    let mut count = s.clone();
    count[61] = 2;
    assert_eq!(refuse(count), DecodeError::Malformed("record count does not match the body"));
    let mut reserved = s.clone();
    reserved[11] = 1;
    assert_eq!(refuse(reserved), DecodeError::Malformed("reserved header bytes set"));
    let mut unknown_flag = s.clone();
    unknown_flag[6] = 0x80;
    assert_eq!(refuse(unknown_flag), DecodeError::Malformed("unknown flags"));
    let mut no_data_seq = s.clone();
    no_data_seq[36..44].copy_from_slice(&[0; 8]);
    assert_eq!(refuse(no_data_seq), DecodeError::Malformed("sessions without a data_seq"));
    let mut extra = s.clone();
    extra.truncate(extra.len() - MAC_LEN);
    extra.push(0);
    extra.extend_from_slice(&[0; MAC_LEN]);
    assert_eq!(refuse(extra), DecodeError::Malformed("body length does not match the datagram"));

    let h = bytes(&hello());
    let mut bulk_hello = h.clone();
    bulk_hello[7] |= flags::BULK as u8;
    assert_eq!(refuse(bulk_hello), DecodeError::Malformed("bulk flags on a hello"));
    let mut ips = h.clone();
    ips[64 + 13] = 2;
    assert_eq!(refuse(ips), DecodeError::Malformed("local IP count does not match the hello"));
    let mut zero_node = h.clone();
    zero_node[8..10].copy_from_slice(&[0, 0]);
    assert_eq!(refuse(zero_node), DecodeError::Malformed("node, epoch and seq must not be zero"));
}
