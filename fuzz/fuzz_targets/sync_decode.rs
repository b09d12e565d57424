//! The session sync decoder on arbitrary bytes, and on arbitrary bytes made authentic: it
//! never panics, what it accepts encodes back to the same bytes, and a peer takes an accepted
//! message once (the same message again is a replay). State is fresh for every input.

#![no_main]

use std::net::Ipv4Addr;
use std::time::Instant;

use ctrlplane::sync::peer::{Local, Peer, Refused};
use ctrlplane::sync::wire::{decode, encode, seal, Key, HEADER_LEN, MAC_LEN, MAX_MESSAGE, VERSION};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = Key::new(b"the fuzzing cluster key").expect("key");
    let _ = decode(data, &key);
    if data.len() < HEADER_LEN || data.len() + MAC_LEN > MAX_MESSAGE {
        return;
    }
    // Past the envelope: the checks behind the MAC.
    let mut signed = data.to_vec();
    signed[0..4].copy_from_slice(b"SLSY");
    signed[4] = VERSION;
    seal(&mut signed, &key);
    let Ok(message) = decode(&signed, &key) else { return };
    let mut again = Vec::new();
    encode(&message, &key, &mut again);
    assert_eq!(again, signed, "what decodes encodes back to the same bytes");
    let mut peer = Peer::new(Ipv4Addr::new(198, 18, 0, 12));
    let local = Local { node: message.header.node.wrapping_add(1).max(1), epoch: 1 };
    let now = Instant::now();
    if peer.receive(&message, local, now).is_ok() {
        assert_eq!(peer.receive(&message, local, now).err(), Some(Refused::Replay));
    }
});
